"""`python webhookhost.py CERT_DIR PROCESSES PORT`: tftj.operator.webhookprocesses in a process
of its own, as `tftj operator` runs it (the children are forked from a fresh, thread-free
process, not from the test runner). One JSON line on stdout when serving ({"port", "pids"}) or
when it cannot ({"error"}); then "count" on stdin answers {"count": reviews observed},
"stop" (or EOF) stops the children and answers {"stopped": reviews observed}. The end of a
child it did not stop is reported as {"exit": code}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tftj.operator.certs import ensure_certs
from tftj.operator.webhookprocesses import WebhookProcessError, WebhookProcesses


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def main(cert_dir: str, processes: str, port: str) -> int:
    certs = ensure_certs(Path(cert_dir), ["127.0.0.1"])
    observed: list[tuple[str, str, float]] = []
    webhook = WebhookProcesses(
        certs,
        addr="127.0.0.1",
        port=int(port),
        processes=int(processes),
        on_exit=lambda code: say(exit=code),
        observe=lambda *review: observed.append(review),
    )
    try:
        webhook.start()
    except (OSError, WebhookProcessError) as exc:
        say(error=str(exc))
        return 2
    say(port=webhook.port, pids=[child.pid for child in webhook.children])
    for line in sys.stdin:
        if line.strip() == "count":
            say(count=len(observed))
        elif line.strip() == "stop":
            break
    webhook.stop()
    say(stopped=len(observed))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
