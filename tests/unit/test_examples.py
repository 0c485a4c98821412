"""The shipped examples: valid, complete where they claim to be, and runnable offline."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import yaml
from tftj.api.manifest import load_job, resolve_local_paths
from tftj.api.schema import iter_fields, spec_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Fields full.yaml leaves out on purpose (its header says why).
NOT_IN_FULL = {
    "spec.storage.claimName",
    "spec.model.builder",
    "spec.training.optimizerParams.momentum",
    "spec.training.optimizerParams.nesterov",
    "spec.training.optimizerParams.rho",
    "spec.training.optimizerParams.centered",
    "spec.training.optimizerParams.initialAccumulatorValue",
}


def _has(node: Any, words: list[str]) -> bool:
    """Whether `node` sets the field; for a list, whether any item does."""
    if not words:
        return True
    if isinstance(node, list):
        return any(_has(item, words) for item in node)
    return isinstance(node, dict) and words[0] in node and _has(node[words[0]], words[1:])


def test_full_example_sets_every_field() -> None:
    spec = yaml.safe_load((EXAMPLES / "full.yaml").read_text())["spec"]
    missing = [
        row.path
        for row in iter_fields(spec_schema(), "spec")
        if row.path not in NOT_IN_FULL and not _has(spec, row.path.replace("[]", "").split(".")[1:])
    ]
    assert missing == []


def test_minimal_example_is_only_a_data_format() -> None:
    doc = yaml.safe_load((EXAMPLES / "minimal.yaml").read_text())
    assert doc["spec"] == {"data": {"format": "synthetic"}}


def test_digits_example_reads_the_shipped_csv_from_anywhere() -> None:
    job, report = load_job(EXAMPLES / "digits-mlp.yaml")
    assert report.ok
    spec = resolve_local_paths(job.spec, EXAMPLES)
    path = Path(spec.data.path or "")
    assert path.is_absolute() and path.is_file()
    with path.open() as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 1797 and len(rows[0]) == 65 and rows[0][-1] == "label"
    assert {row[-1] for row in rows[1:]} == {str(d) for d in range(10)}


def test_remote_and_absolute_paths_are_left_alone() -> None:
    job, _ = load_job(EXAMPLES / "digits-mlp.yaml")
    for given in ("gs://bucket/data.csv", "/data/digits.csv"):
        spec = job.spec.model_copy(
            update={"data": job.spec.data.model_copy(update={"path": given})}
        )
        assert resolve_local_paths(spec, EXAMPLES).data.path == given


def test_examples_and_defaults_are_warning_free() -> None:
    # A warning on a shipped example (or on a spec that sets nothing) teaches users to ignore
    # warnings; the examples that restart show storage instead.
    for path in sorted(EXAMPLES.glob("*.yaml")):
        _job, report = load_job(path)
        assert (path.name, list(report.warnings)) == (path.name, [])
    digits = yaml.safe_load((EXAMPLES / "digits-mlp.yaml").read_text())["spec"]
    assert digits["storage"]["size"]
