"""The admission webhook alone: 50 AdmissionReviews in flight, no cluster, no reconcile beside it.

What runs (one run, same machine, phases interleaved over --rounds): the webhook's servers on
loopback, HTTPS, hammered by testbin/hammer (a Go client: `bash testbin/build.sh peer`) with
--concurrency reviews in flight at any time over kept-alive connections, --requests reviews per
round, each the review of a 4-worker TFTrainingJob (allowed, fully validated):
  - tftj's webhook served by 1, 2 and 3 processes of its own on one port
    (tftj.operator.webhookprocesses, as `tftj operator --webhook-processes=N` forks them);
  - with --baseline REV, the webhook server of git revision REV (one process), run from its own
    source: before and after a change of the server in the same run.
The issue's goal: p99 < 25 ms with 50 in flight on this machine (docs/operator-scale.md).

Usage: python bench/webhook_bench.py [--rounds 3] [--baseline REV] [--no-write]
Writes the section "## The webhook alone, 50 in flight" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from benchdoc import write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testbin"))
from devoperator import training_job
from operator_bench import REPO, admission_review, baseline_tree, pct
from peer_bench import HAMMER, hammer
from webhook_fuzz import server_process

SECTION = "## The webhook alone, 50 in flight"
PROCESS_COUNTS = (1, 2, 3)
# Serves the webhook from the source on PYTHONPATH and prints its port: with N > 0 processes
# through WebhookProcesses; with 0 (a baseline, which may not have them) WebhookServer itself.
SERVER = """
import asyncio, sys, threading
from pathlib import Path
from tftj.operator.certs import ensure_certs

certs = ensure_certs(Path(sys.argv[1]), ["127.0.0.1"])
processes = int(sys.argv[2])
if processes:
    from tftj.operator.webhookprocesses import WebhookProcesses
    served = WebhookProcesses(
        certs, addr="127.0.0.1", port=0, processes=processes, on_exit=lambda code: None
    ).start()
    print(served.port, flush=True)
    threading.Event().wait()
else:
    from tftj.operator.webhook import WebhookServer

    async def main() -> None:
        async with WebhookServer(certs, addr="127.0.0.1", port=0) as server:
            print(server.port, flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())
"""


def serve_and_hammer(
    source: Path, processes: int, state: Path, body: bytes, args: argparse.Namespace
) -> list[float]:
    """Latencies (ms) of one round against a server run from `source` (an `operator/` dir)."""
    certs = state / "certs"
    with server_process(SERVER, [str(certs), str(processes)], source) as (_, port):
        url = f"https://127.0.0.1:{port}/validate-tftrainingjob"
        seconds = hammer(url, certs / "ca.crt", body, args.concurrency, args.requests, state)
    return [s * 1000 for s in seconds]


def summary(values: list[float]) -> str:
    text = f"{statistics.fmean(values):.1f}"
    return text + (f" [{min(values):.1f}-{max(values):.1f}]" if len(values) > 1 else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--baseline", help="also the webhook server of this git revision")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not HAMMER.exists():
        print(f"{HAMMER} is missing: bash testbin/build.sh peer", file=sys.stderr)
        return 2

    body = admission_review(training_job("hook", replicas=4, run_seconds=None))
    phases: list[tuple[str, Path, int]] = [
        (f"{n} process{'es' if n > 1 else ''} of its own", REPO / "operator", n)
        for n in PROCESS_COUNTS
    ]
    with tempfile.TemporaryDirectory(prefix="tftj-webhook-bench-") as tmp:
        state = Path(tmp)
        if args.baseline:
            old = baseline_tree(args.baseline, state / "baseline")
            phases.insert(0, (f"tftj at {args.baseline} (one process)", old, 0))
        rounds: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in phases}
        for index in range(args.rounds):
            order = phases if index % 2 == 0 else phases[::-1]
            for label, source, processes in order:
                print(f"bench: round {index + 1}, {label}", flush=True)
                ms = serve_and_hammer(source, processes, state, body, args)
                rounds[label].append({f"p{q}": pct(ms, q) for q in (50, 95, 99)} | {"max": max(ms)})

    lines = [
        SECTION,
        "",
        f"`bench/webhook_bench.py` — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()}, {os.cpu_count()} CPUs. The webhook alone (no cluster, no "
        f"reconcile beside it): {args.requests} AdmissionReviews of a 4-worker TFTrainingJob "
        f"per round, {args.concurrency} in flight at any time over kept-alive HTTPS "
        "connections (a Go client, testbin/hammer, on the same cores). "
        f"{args.rounds} round(s), phase order reversed every round; mean [min-max] over "
        "rounds, ms. Goal: p99 < 25 ms.",
        "",
        "| webhook served by | p50 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, _, _ in phases:
        runs = rounds[label]
        lines.append(
            f"| {label} | "
            + " | ".join(summary([r[k] for r in runs]) for k in ("p50", "p95", "p99", "max"))
            + " |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        print(f"wrote {write_section(SECTION, text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
