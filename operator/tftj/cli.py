"""The `tftj` command (also installed as the kubectl plugin `kubectl-tftj`).

Each sub-command lives in its own module under tftj.commands, which exposes
`register(subparsers)`; it adds its parser and sets `handler` to a function
`(args) -> int` (the exit code). Modules are imported lazily by name so that
`tftj validate` never pays for importing TensorFlow or the Kubernetes client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# sub-command name -> module under tftj.commands that implements it
COMMANDS: dict[str, str] = {
    "validate": "validate",
    "resolve": "resolve",
    "explain": "explain",
    "crd": "crd",
    "docs": "docs",
    "convert": "convert",
    "run": "run",
    "operator": "operator",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tftj", description="Distributed TensorFlow training as a Kubernetes resource."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name)  # listed in --help, loaded only when chosen
            continue
        importlib.import_module(f"tftj.commands.{module}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(only=chosen).parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print("tftj: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
