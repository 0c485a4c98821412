"""`tftj validate PATH...`: offline validation of TFTrainingJob manifests, for GitOps CI.

Prints one line per problem, `file:doc-index: field.path: message (line N)` (doc-index counts
the YAML documents of the file from 0; N is the field's line, or its parent's when the field is
missing), warnings as `file:doc-index: warning: ...`. Exit 1 if any error.
Documents of other kinds are skipped, so whole deployment directories can be checked as they are.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tftj.api.errors import Problem
    from tftj.api.yamlload import Document

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="validate TFTrainingJob manifests (files or directories)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="manifest files, directories (searched recursively for *.yaml, *.yml, *.json), "
        "or - for standard input",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print errors only (no warnings, no summary)"
    )
    parser.set_defaults(handler=run)


@dataclass
class Tally:
    files: int = 0
    manifests: int = 0
    errors: int = 0
    warnings: int = 0


def manifest_files(path: Path) -> Iterator[Path]:
    """`path` itself if it is a file; else every manifest below it, sorted, hidden dirs skipped."""
    if str(path) == STDIN or not path.is_dir():
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(MANIFEST_SUFFIXES) and not name.startswith("."):
                yield Path(root) / name


STDIN = "-"


def check_file(path: Path, tally: Tally, quiet: bool) -> list[str]:
    """The output lines for one file (`-`: standard input, e.g. `kustomize build . | ...`)."""
    from tftj.api.validate import is_job_document, validate
    from tftj.api.yamlload import LoadError, iter_documents

    try:
        text = sys.stdin.buffer.read() if str(path) == STDIN else path.read_bytes()
    except OSError as exc:
        tally.errors += 1
        return [f"{path}: cannot read: {exc.strerror or exc}"]
    tally.files += 1
    lines: list[str] = []
    for doc in iter_documents(text):
        if isinstance(doc, LoadError):
            tally.errors += 1
            lines.append(f"{path}:{doc.index}: {doc}")
            continue
        if not is_job_document(doc.data):
            continue
        tally.manifests += 1
        report = validate(doc.data)
        tally.errors += len(report.errors)
        lines.extend(f"{path}:{doc.index}: {_at(problem, doc)}" for problem in report.errors)
        if not quiet:
            tally.warnings += len(report.warnings)
            lines.extend(
                f"{path}:{doc.index}: warning: {_at(problem, doc)}" for problem in report.warnings
            )
    return lines


def _at(problem: Problem, doc: Document) -> str:
    """The problem with the line of its field appended, for editors and CI annotations."""
    from tftj.api.yamlload import line_of

    line = line_of(doc.node, problem.path) if problem.path else None
    return f"{problem} (line {line})" if line else str(problem)


def run(args: argparse.Namespace) -> int:
    tally = Tally()
    out: list[str] = []
    for arg in args.paths:
        root = Path(arg)
        if arg != STDIN and not root.exists():
            out.append(f"{arg}: no such file or directory")
            tally.errors += 1
            continue
        for path in manifest_files(root):
            try:
                out.extend(check_file(path, tally, args.quiet))
            except Exception as exc:  # never a traceback: a bug here must not hide the others
                tally.errors += 1
                out.append(f"{path}: internal error ({type(exc).__name__}: {exc})")
    if out:
        sys.stdout.write("\n".join(out) + "\n")
        sys.stdout.flush()  # problems first, then the summary (stderr is unbuffered)
    if not args.quiet:
        print(
            f"{tally.manifests} TFTrainingJob manifest(s) in {tally.files} file(s): "
            f"{tally.errors} error(s), {tally.warnings} warning(s)",
            file=sys.stderr,
        )
    return 1 if tally.errors else 0
