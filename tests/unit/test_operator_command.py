"""`tftj operator`'s webhook flags: a mistake is a usage error naming the flag (exit 2, no
traceback), found before the operator talks to any cluster and with no process left behind."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

TFTJ = Path(sys.executable).with_name("tftj")


def operator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TFTJ), "operator", *args], capture_output=True, text=True, timeout=120
    )


def test_a_webhook_port_in_use_is_a_usage_error_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = operator(
            f"--webhook-port={port}", "--webhook-addr=127.0.0.1", f"--cert-dir={tmp_path}"
        )
    assert result.returncode == 2, result.stderr
    assert f"--webhook-port {port}: cannot listen" in result.stderr
    assert "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_negative_number_of_webhook_processes_is_refused(tmp_path: Path) -> None:
    result = operator("--webhook-port=9443", "--webhook-processes=-1", f"--cert-dir={tmp_path}")
    assert result.returncode == 2
    assert "--webhook-processes: must be 0 or more, got -1" in result.stderr
    assert "Traceback" not in result.stderr
