"""`tftj convert CONFIG`: turn a plain snake_case training config into a TFTrainingJob."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a snake_case training config into a TFTrainingJob manifest",
        description="Read a plain config (`training: {batch_size: 64}, model: {hidden_units: "
        "[256, 128]}, data: {...}`), rename its keys to the schema's camelCase, validate the "
        "result and print it as a TFTrainingJob manifest. Unknown keys are errors with a "
        "did-you-mean; nothing is printed to stdout unless the manifest is valid.",
    )
    parser.add_argument("config", metavar="CONFIG", help="YAML or JSON training config")
    parser.add_argument("--name", help="metadata.name (default: from the file name)")
    parser.add_argument("--namespace", help="metadata.namespace (default: none)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from tftj.api.convert import convert_config, job_name_from
    from tftj.api.validate import validate
    from tftj.api.yamlload import load_one

    path = Path(args.config)
    try:
        config = load_one(path.read_bytes())
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    manifest, problems = convert_config(config, args.name or job_name_from(path.stem))
    if manifest is None:
        for problem in problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 1
    if args.namespace:
        manifest["metadata"]["namespace"] = args.namespace
    report = validate(manifest)
    for problem in report.errors:
        print(f"{path}: {problem}", file=sys.stderr)
    for problem in report.warnings:
        print(f"{path}: warning: {problem}", file=sys.stderr)
    if not report.ok:
        return 1
    sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False, width=100))
    return 0
