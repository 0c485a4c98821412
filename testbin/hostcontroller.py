"""A Go controller manager run as a host process against a LocalCluster, with its webhooks on
loopback: what Kueue (kueuecluster.py) and the benchmark's peer (peeroperator.py) share."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from localcluster import child_env, find_kubectl, wait_for


class ControllerExited(RuntimeError):
    """The controller's process ended while it was awaited."""


@dataclass
class HostController:
    kubeconfig: Path
    state_dir: Path
    binary: Path
    health_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    #: (kind, name) of the webhook configurations it registered: removed by stop()
    webhook_configs: list[tuple[str, str]] = field(default_factory=list)
    NAME: ClassVar[str] = "controller"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"{self.NAME}.log"

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(find_kubectl()), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env=child_env(),
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def wait_ready(self, probe: dict[str, Any], timeout: float = 120) -> None:
        """Until its /readyz answers and the apiserver reaches its webhooks: `probe` is created
        with --dry-run=server, and only its webhooks stand in the way."""

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise ControllerExited(
                    f"{self.NAME} exited ({self.process.returncode}):\n{self.logs()}"
                )
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/readyz", timeout=2
                ) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_for(
            ready, timeout=timeout, message=f"{self.NAME}'s /readyz", fatal=(ControllerExited,)
        )

        def webhook_answers() -> bool:
            try:
                self.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe))
            except RuntimeError as exc:
                if "failed calling webhook" in str(exc):
                    return False
                raise
            return True

        wait_for(webhook_answers, timeout=timeout, message=f"{self.NAME}'s webhooks to answer")

    def logs(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Unregister its webhooks (they would refuse what they review) and stop the process."""
        for kind, name in self.webhook_configs:
            with contextlib.suppress(RuntimeError):
                self.kubectl("delete", kind, name, "--ignore-not-found")
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
