"""Benchmark `tftj validate` on 1,000 manifests and record the figure in docs/benchmarks.md.

What is timed (all in this one run, same files, same machine):
  - `tftj validate DIR` as a user runs it (a subprocess), start-up included;
  - the same command after start-up: its handler run in this process once the modules are
    imported and warmed up on one file (the goal: >= 1,000 manifests/s);
  - baseline 1: `yaml.safe_load` of every file (PyYAML's pure-Python loader, what a naive
    checker does before it validates anything);
  - baseline 2: the same parse with libyaml (`yaml.CSafeLoader`), which tftj itself uses;
    the ratio of tftj's time to this one is validation's own cost on top of reading YAML.

Usage: python bench/validate_bench.py [--count 1000] [--no-write]
Writes the section "## tftj validate" of docs/benchmarks.md (other sections are left as they are).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from benchdoc import DOC, write_section

REPO = Path(__file__).resolve().parents[1]
SECTION = "## tftj validate"
TFTJ = Path(sys.executable).with_name("tftj")


def make_manifest(i: int, rng: random.Random) -> dict[str, Any]:
    """A realistic, valid manifest (about the size of examples/digits-mlp.yaml or larger)."""
    replicas = rng.choice([1, 2, 4, 8])
    gpus = rng.choice([0, 1, 2])
    batch = replicas * max(1, gpus) * rng.choice([16, 32, 64])
    optimizer = rng.choice(["adam", "adamw", "sgd", "momentum", "rmsprop"])
    spec: dict[str, Any] = {
        "training": {
            "batchSize": batch,
            "epochs": rng.randint(2, 200),
            "learningRate": round(rng.uniform(1e-4, 0.05), 5),
            "optimizer": optimizer,
            "regularization": {"l2": 0.0001, "dropout": round(rng.uniform(0, 0.4), 2)},
            "schedule": {"type": "cosine", "warmupEpochs": 1, "minLearningRate": 1e-6},
            "metrics": ["loss", "accuracy"],
        },
        "model": {"hiddenUnits": [rng.choice([64, 128, 256]), 64], "activation": "relu"},
        "data": {
            "format": "csv",
            "path": f"/data/set-{i}.csv",
            "preprocess": {"normalization": "z-score"},
        },
        "logging": {"frequency": 100, "directory": "logs"},
        "workers": {
            "replicas": replicas,
            "gpusPerWorker": gpus,
            "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
            "podTemplate": {"env": [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "1"}]},
        },
        "storage": {"size": "10Gi"},
    }
    return {
        "apiVersion": "tftj.dev/v1alpha1",
        "kind": "TFTrainingJob",
        "metadata": {"name": f"job-{i}", "namespace": "team-a", "labels": {"team": "a"}},
        "spec": spec,
    }


def _cpu() -> float:
    """CPU seconds of this process and its finished children (immune to waiting for a CPU)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of fn()."""
    wall, cpu = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - wall, _cpu() - cpu


def best_of(n: int, fn: Any) -> tuple[float, float]:
    runs = [timed(fn) for _ in range(n)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def run_tftj(path: Path) -> None:
    result = subprocess.run([str(TFTJ), "validate", "-q", str(path)], capture_output=True)
    if result.returncode != 0:
        raise SystemExit(f"tftj validate failed:\n{result.stdout.decode()[:2000]}")


def run_in_process(path: Path) -> None:
    """`tftj validate -q PATH` minus start-up: the handler, modules already imported."""
    from tftj.cli import build_parser

    args = build_parser(only="validate").parse_args(["validate", "-q", str(path)])
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        if args.handler(args) != 0:
            raise SystemExit("tftj validate failed (run it on the files to see why)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "manifests"
        one = Path(tmp) / "one"
        root.mkdir()
        one.mkdir()
        files = []
        for i in range(args.count):
            path = root / f"job-{i:04d}.yaml"
            path.write_text(yaml.safe_dump(make_manifest(i, rng), sort_keys=False))
            files.append(path)
        (one / "job.yaml").write_bytes(files[0].read_bytes())
        texts = [p.read_bytes() for p in files]
        size = sum(len(t) for t in texts) / len(texts)

        total = best_of(args.repeat, lambda: run_tftj(root))
        run_in_process(one)  # imports and first-call set-up: start-up, not timed
        work = best_of(args.repeat, lambda: run_in_process(root))
        py_load = best_of(args.repeat, lambda: [yaml.safe_load(t) for t in texts])
        c_load = best_of(
            args.repeat,
            lambda: [yaml.load(t, Loader=yaml.CSafeLoader) for t in texts],
        )

    n = args.count

    def row(what: str, t: tuple[float, float], count: int = n, bold: bool = False) -> str:
        b = "**" if bold else ""
        return (
            f"| {b}{what}{b} | {t[0]:.3f} s | {t[1]:.3f} s | {t[1] / count * 1e3:.3f} ms | "
            f"{b}{count / t[0]:,.0f}{b} | {b}{count / t[1]:,.0f}{b} |"
        )

    rate_wall, rate_cpu = n / work[0], n / work[1]
    lines = [
        f"Measured {dt.date.today().isoformat()} on {platform.machine()} "
        f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end), Python "
        f"{platform.python_version()}; `python bench/validate_bench.py`, best of {args.repeat}.",
        f"{n} generated valid TFTrainingJob manifests, one file each, {size:.0f} bytes on average. "
        "Wall time depends on what else the machine runs; CPU time (user + system) does not, "
        "so it is the figure to compare across runs.",
        "",
        "| What | Wall | CPU | CPU per manifest | Manifests/s (wall) | Manifests/s (CPU) |",
        "|---|---|---|---|---|---|",
        row("`tftj validate DIR` (whole command, a subprocess)", total),
        row("`tftj validate DIR` after start-up (handler only, modules loaded)", work, bold=True),
        row("baseline: `yaml.safe_load` only (pure Python)", py_load),
        row("baseline: libyaml parse only (`CSafeLoader`)", c_load),
        "",
        f"Start-up (interpreter, imports) is the difference between the first two rows, about "
        f"{max(total[0] - work[0], 0):.2f} s wall here. "
        f"Goal: 1,000 manifests/s after start-up: **{'met' if rate_cpu >= 1000 else 'NOT met'}** "
        f"by CPU time ({rate_cpu:,.0f}/s; {rate_wall:,.0f}/s by wall time in this run). Full "
        "validation (file walk, parse, duplicate-key check, schema, resolve, every cross-field "
        f"rule, output) costs {work[1] / c_load[1]:.1f}x the CPU of a bare libyaml parse and "
        f"{work[1] / py_load[1]:.2f}x that of a bare `yaml.safe_load`.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
        print(f"\nwrote {DOC.relative_to(REPO)} ({SECTION})")


if __name__ == "__main__":
    main()
