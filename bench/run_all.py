"""Runs every benchmark in turn; each writes its own section of docs/benchmarks.md.

Benchmarks run one after another, never in parallel: on a 2-core machine two of them at once
would measure each other. Pass names to run a subset: `python bench/run_all.py validate trainer`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# name -> the script and its arguments
BENCHMARKS: dict[str, list[str]] = {
    "validate": ["validate_bench.py"],
    "webhook": ["webhook_fuzz.py"],
    # 50 reviews in flight, no cluster: 1-3 webhook processes and, from its own source, the
    # server before it had processes and its own HTTP server (aiohttp, in one process).
    "webhook-alone": ["webhook_bench.py", "--baseline=76aee18"],
    "trainer": ["trainer_bench.py"],
    "data": ["data_bench.py"],
    "controlplane": ["controlplane_bench.py"],
    "operator": ["operator_bench.py"],
    # The same at 1,000 jobs x 4; the baseline is the operator before the cache compaction
    # and the malloc arena limit (issue 10), run from its own source in the same run. (Older
    # ones, before the lean caches and the informers, do not get through 1,000 x 4 within
    # the hour: docs/operator-scale.md.)
    "operator-1000": [
        "operator_bench.py",
        "--jobs=1000",
        "--no-webhook",
        "--baseline=af82726",
        "--timeout=3600",
        "--section=## Operator at 1,000 jobs",
    ],
    # Five rounds: the RSS after each still grew by 5, 2, 2 MiB over the first three and
    # held from the fourth (docs/benchmarks.md, "Soak"); three would not show the plateau.
    "soak": ["soak_bench.py", "--rounds=5"],
    "peer": ["peer_bench.py"],
    # The same side by side at 1,000 jobs x 4 (one round: each phase takes minutes).
    "peer-1000": [
        "peer_bench.py",
        "--jobs=1000",
        "--rounds=1",
        "--phases=floor,children,tftj,peer-tuned",
        "--timeout=3600",
        "--section=## Operator vs. the Go peer at 1,000 jobs",
    ],
    "failover": ["failover_bench.py"],
    "faults": ["faults_bench.py"],
    "node": ["node_bench.py"],
}


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    failed = []
    for name in argv or list(BENCHMARKS):
        print(f"== {name}", flush=True)
        script, *args = BENCHMARKS[name]
        if subprocess.call([sys.executable, str(BENCH_DIR / script), *args]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
