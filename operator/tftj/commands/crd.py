"""`tftj crd`: print the CustomResourceDefinition generated from the schema."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "crd",
        help="print the TFTrainingJob CRD (crds/tftrainingjobs.tftj.dev.yaml)",
        description="Print the CustomResourceDefinition generated from the schema. "
        "`make generate` writes it to crds/tftrainingjobs.tftj.dev.yaml.",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tftj.api.crd import crd_yaml

    sys.stdout.write(crd_yaml())
    return 0
