"""`tftj resolve FILE`: print every value the trainer will use, as YAML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "resolve",
        help="print the resolved parameters of a manifest (what the trainer gets)",
        description="Validate a TFTrainingJob manifest and print its resolved parameters: the "
        "spec with every default filled in, the derived values and the parameters hash; the "
        "same YAML the operator mounts at /etc/tftj/params.yaml.",
    )
    parser.add_argument("file", metavar="FILE", help="a manifest with a TFTrainingJob document")
    parser.add_argument(
        "--local",
        action="store_true",
        help="resolve relative data paths against the manifest's directory, as `tftj run` does",
    )
    parser.add_argument("--namespace", default=None, help="namespace recorded in job.namespace")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from tftj.api.manifest import ManifestError, load_job, resolve_local_paths
    from tftj.api.resolve import resolve, resolved_to_dict

    path = Path(args.file)
    try:
        job, report = load_job(path)
    except ManifestError as exc:
        print(exc, file=sys.stderr)
        return 1
    for problem in report.warnings:
        print(f"{path}: warning: {problem}", file=sys.stderr)
    spec = resolve_local_paths(job.spec, path.parent) if args.local else job.spec
    namespace = args.namespace or job.metadata.namespace
    resolved = resolve(spec, name=job.metadata.name or path.stem, namespace=namespace)
    sys.stdout.write(yaml.safe_dump(resolved_to_dict(resolved), sort_keys=False, width=100))
    return 0
