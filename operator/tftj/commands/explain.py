"""`tftj explain [FIELD]`: field documentation, offline, like `kubectl explain`."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="document a field: type, description, unit, range, default",
        description="Show the documentation of a TFTrainingJob field, e.g. "
        "`tftj explain spec.training.learningRate` (the leading `spec.` may be left out). "
        "Without FIELD: the top level.",
    )
    parser.add_argument("field", nargs="?", default="", metavar="FIELD")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tftj.api.explain import UnknownField, explain

    try:
        sys.stdout.write(explain(args.field))
    except UnknownField as exc:
        print(f"tftj explain: {exc}", file=sys.stderr)
        return 1
    return 0
