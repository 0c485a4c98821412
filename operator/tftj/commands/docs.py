"""`tftj docs`: print docs/parameters.md, the parameter reference generated from the schema."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "docs",
        help="print the parameter reference (docs/parameters.md)",
        description="Print the Markdown parameter reference generated from the schema. "
        "`make generate` writes it to docs/parameters.md.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tftj.api.docs import parameters_markdown

    sys.stdout.write(parameters_markdown())
    return 0
