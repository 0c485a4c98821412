"""The "## make test on a fresh machine" section of docs/benchmarks.md, from the log and
result of one `bash bench/cold_make_test.sh` run (which calls this at its end).

    python3 bench/cold_report.py LOG RESULT [--note TEXT] [--no-write]

What it reports: the wall time and CPU seconds of the whole cold `make test`, split into the
prerequisites (Go builds and image builds, side by side) and pytest, with the per-component
build times the scripts log ("built in Ns"); the warm figure to compare with is CI's own
`make test` with its caches (the issue notes), not measured here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import re
import sys
from pathlib import Path

from benchdoc import write_section

SECTION = "## make test on a fresh machine"
BUILT = re.compile(r"^(testbin|images): (.+?):? built in (\d+)s$", re.M)
PYTEST = re.compile(r"^=*\s*(.*?(?:passed|failed).*?) in ([\d.]+)s", re.M)
RESULT = re.compile(r"rc=(\d+) wall=(\d+)s .*?user=([\d.]+) s sys=([\d.]+) s load=([\d. ]+)", re.S)


def report(log: str, result: str, note: str) -> str:
    found = RESULT.search(result)
    if found is None:
        raise SystemExit(f"no result line in {result!r}")
    rc, wall, user, sys_, load = found.groups()
    builds: dict[str, list[tuple[str, int]]] = {"testbin": [], "images": []}
    for match in BUILT.finditer(log):
        where, name, seconds = match.groups()
        builds[where].append((name, int(seconds)))
    tests = PYTEST.findall(log)
    summary, pytest_seconds = tests[-1] if tests else ("pytest did not finish", "0")
    wall_s, pytest_s = int(wall), float(pytest_seconds)
    rows = "\n".join(
        f"| {where} | {name} | {seconds / 60:.1f} min |"
        for where, items in builds.items()
        for name, seconds in items
    )
    serial = {where: sum(s for _, s in items) for where, items in builds.items()}
    outcome = "green" if rc == "0" else f"exit status {rc}"
    return f"""{SECTION}

`bash bench/cold_make_test.sh` — {dt.date.today()}, {platform.node()}, 2 CPUs: `CI=true bash
.ci/run` in a fresh clone with every cache the project's scripts create pointed at empty
directories (Go modules and build cache, testbin and image caches, pip, pre-commit); the
Debian packages of .ci/system-deps.sh were already installed. Load average at the end:
{load.strip()}.

**{wall_s / 60:.1f} min wall** ({outcome}): prerequisites and lint
{(wall_s - pytest_s) / 60:.1f} min, pytest {pytest_s / 60:.1f} min ({summary}).
CPU: {float(user) / 60:.1f} min user + {float(sys_) / 60:.1f} min system.

| built by | component | wall |
|---|---|---:|
{rows}

The Go builds run one after another ({serial["testbin"] / 60:.1f} min in all), side by side
with the image builds ({serial["images"] / 60:.1f} min: base, then operator and trainer), the
venv and the Debian packages (`make prerequisites`).
{note}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--note", default="", help="a paragraph about this run")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    text = report(args.log.read_text(errors="replace"), args.result.read_text(), args.note)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
