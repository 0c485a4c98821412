"""The admission webhook under 10,000 random bodies and 10,000 random manifests.

What runs (one run, same machine): the real webhook server (tftj.operator.webhook) in its own
process on loopback, HTTPS, one keep-alive client;
  - 10,000 random request bodies (tests/unit/doorgen.review_bodies: not JSON, wrong shapes,
    wrong types, unknown kinds, deep nesting, huge ones, and good reviews): the HTTP statuses
    by category; any 5xx is a failure. The server's RSS after the first 1,000 (the baseline:
    imports and caches warm) and after all 10,000; a good review must still be admitted;
  - 10,000 random manifests (doorgen.manifests) through `tftj validate` (one subprocess over
    one multi-document file) and through the webhook: verdicts that differ, errors without a
    field path, tracebacks (all must be 0).

Usage: python bench/webhook_fuzz.py [--count 10000] [--no-write]
Writes the section "## Webhook under random input" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from benchdoc import DOC, write_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "unit"))
from doorgen import manifests, review, review_bodies  # noqa: E402
from tftj.api.validate import validate  # noqa: E402
from webhookclient import Client  # noqa: E402

SECTION = "## Webhook under random input"
TFTJ = Path(sys.executable).with_name("tftj")
SERVER = """
import asyncio, sys
from pathlib import Path
from tftj.operator.certs import ensure_certs
from tftj.operator.webhook import WebhookServer

async def main() -> None:
    certs = ensure_certs(Path(sys.argv[1]), ["127.0.0.1"])
    async with WebhookServer(certs, addr="127.0.0.1", port=0) as server:
        print(server.port, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""
GOOD = {
    "apiVersion": "tftj.dev/v1alpha1",
    "kind": "TFTrainingJob",
    "metadata": {"name": "good"},
    "spec": {"data": {"format": "synthetic"}, "storage": {"size": "1Gi"}},
}


def source_env(operator_dir: Path) -> dict[str, str]:
    """This environment with `operator_dir` (tftj's source, of this checkout or a baseline's)
    first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": f"{operator_dir}:{os.environ.get('PYTHONPATH', '')}"}


@contextlib.contextmanager
def server_process(
    script: str, args: list[str], operator_dir: Path
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`python -c script *args` run from `operator_dir`: (the process, the port it prints
    first); terminated (and so are its webhook processes, which die with it) after."""
    server = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        text=True,
        env=source_env(operator_dir),
    )
    try:
        assert server.stdout is not None
        yield server, int(server.stdout.readline())
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def admitted(client: Client, obj: object, uid: str) -> tuple[bool, str]:
    status, data = client.post(json.dumps(review(obj, uid=uid)).encode())
    if status != 200:
        raise RuntimeError(f"HTTP {status} for a well-formed review: {data[:200]!r}")
    answer = json.loads(data)["response"]
    return bool(answer["allowed"]), str(answer.get("status", {}).get("message", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    env = source_env(REPO / "operator")
    with (
        tempfile.TemporaryDirectory() as tmp,
        server_process(SERVER, [str(Path(tmp) / "certs")], REPO / "operator") as (server, port),
    ):
        client = Client(port, Path(tmp) / "certs" / "ca.crt")

        # 1. random bodies
        statuses: collections.Counter[tuple[str, int]] = collections.Counter()
        rss: dict[int, int] = {}  # requests answered -> server RSS in KiB
        started = time.perf_counter()
        for index, (category, body) in enumerate(review_bodies(seed=2026, count=args.count)):
            status, _ = client.post(body)
            statuses[(category, status)] += 1
            if (index + 1) % 1000 == 0:
                rss[index + 1] = rss_kib(server.pid)
        bodies_seconds = time.perf_counter() - started
        warm_rss, end_rss = rss[min(rss)], rss_kib(server.pid)
        good_after, _ = admitted(client, GOOD, "after")
        five_xx = sum(n for (_, status), n in statuses.items() if status >= 500)

        # 2. the same verdicts from tftj validate and the webhook
        jobs = list(manifests(seed=2027, count=args.count))
        path = Path(tmp) / "random.yaml"
        path.write_text(yaml.safe_dump_all(jobs, sort_keys=False))
        result = subprocess.run(
            [str(TFTJ), "validate", "--quiet", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
        )
        tracebacks = (result.stdout + result.stderr).count("Traceback")
        by_doc: dict[int, list[str]] = collections.defaultdict(list)
        for line in result.stdout.splitlines():
            match = re.match(rf"{re.escape(str(path))}:(\d+): (.*?)(?: \(line \d+\))?$", line)
            if match is None:
                raise RuntimeError(f"unexpected tftj validate output: {line}")
            by_doc[int(match[1])].append(match[2])
        pathless = sum(1 for job in jobs for p in validate(job).errors if not p.path)
        differ = allowed = 0
        for index, job in enumerate(jobs):
            ok, message = admitted(client, job, f"u{index}")
            allowed += ok
            if ok != (not by_doc.get(index)) or (not ok and message != "; ".join(by_doc[index])):
                differ += 1

    categories = sorted({c for c, _ in statuses})
    codes = sorted({s for _, s in statuses})
    table = "\n".join(
        f"| {c} | " + " | ".join(str(statuses.get((c, s), 0)) for s in codes) + " |"
        for c in categories
    )
    body = f"""{SECTION}

`python bench/webhook_fuzz.py` ({dt.date.today()}, {platform.machine()}, {os.cpu_count()} cores):
the real webhook server in its own process, HTTPS on loopback, one keep-alive client.

{args.count} random request bodies (tests/unit/doorgen.py, seed 2026) in {bodies_seconds:.1f} s,
HTTP status by kind of input:

| input | {" | ".join(str(s) for s in codes)} |
|---|{"---|" * len(codes)}
{table}

- 5xx answers: **{five_xx}**; a good review admitted afterwards: **{good_after}**.
- Server memory: {warm_rss / 1024:.1f} MiB RSS after the first 1,000 bodies (baseline),
  {end_rss / 1024:.1f} MiB after all {args.count}: **{end_rss / warm_rss:.3f}x** the baseline;
  every 1,000: {", ".join(f"{kib / 1024:.1f}" for kib in rss.values())} MiB.
- {args.count} random manifests (seed 2027) through `tftj validate` and the webhook:
  {allowed} valid, {args.count - allowed} invalid; verdicts or messages that differ: **{differ}**;
  errors without a field path: **{pathless}**; tracebacks: **{tracebacks}**.
"""
    print(body)
    if not args.no_write:
        write_section(SECTION, body, DOC)
    return 0 if five_xx == 0 and differ == 0 and pathless == 0 and tracebacks == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
