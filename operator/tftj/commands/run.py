"""`tftj run FILE`: train a TFTrainingJob manifest with local worker processes (no cluster)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="train a manifest locally, one process per worker",
        description=(
            "Validate and resolve a TFTrainingJob manifest, then train it on this machine: one "
            "trainer process per worker, synchronised with MultiWorkerMirroredStrategy over "
            "loopback. Local runs are CPU-only: workers.gpusPerWorker is set to 0 (so batchSize "
            "is split over the workers alone). Relative data paths are read relative to the "
            "manifest's directory. A retryable failure restarts all workers from the latest "
            "checkpoint (runPolicy.backoffLimit times); Ctrl-C stops all workers cleanly."
        ),
    )
    parser.add_argument("file", type=Path, help="TFTrainingJob manifest (YAML)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".work/run"),
        help="holds params.yaml, logs/, checkpoints/, export/ and worker logs; "
        "an existing one resumes from its checkpoints (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes (overrides spec.workers.replicas)",
    )
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=10.0,
        help="after Ctrl-C or a failure, how long workers get to exit after "
        "SIGTERM before SIGKILL (default: %(default)s)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tftj.localrun.runner import RunOptions, run_local

    if args.workers is not None and args.workers < 1:
        print("tftj run: --workers must be at least 1")
        return 2
    return run_local(
        RunOptions(
            manifest=args.file,
            workdir=args.workdir,
            workers=args.workers,
            grace_seconds=args.grace_seconds,
        )
    )
