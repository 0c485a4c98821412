"""What a user reads when a manifest is wrong: the field path, what is allowed, what was given."""

from __future__ import annotations

from typing import Any

import pytest
from cases import manifest, merged
from tftj.api.validate import validate
from tftj.api.yamlload import Document, LoadError, iter_documents, line_of, load_one


def errors(spec_patch: dict[str, Any] | None = None, **top: Any) -> list[str]:
    m = manifest(merged({"data": {"format": "synthetic"}}, spec_patch or {}))
    m.update(top)
    return [str(p) for p in validate(m).errors]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            {"training": {"learningRate": -1}},
            "spec.training.learningRate: must be > 0 and <= 10, got -1",
        ),
        (
            {"training": {"learningRate": 11}},
            "spec.training.learningRate: must be > 0 and <= 10, got 11",
        ),
        ({"training": {"epochs": "abc"}}, "spec.training.epochs: must be an integer, got 'abc'"),
        (
            {"training": {"epochs": 2.5}},
            "spec.training.epochs: must be an integer, got 2.5 (a fraction)",
        ),
        ({"training": {"epochs": True}}, "spec.training.epochs: must be an integer, got true"),
        (
            {"training": {"learningRate": "0.1"}},
            "spec.training.learningRate: must be a number, got '0.1'",
        ),
        ({"data": {"shuffle": "yes"}}, "spec.data.shuffle: must be true or false, got 'yes'"),
        (
            {"model": {"hiddenUnits": [64, "x"]}},
            "spec.model.hiddenUnits[1]: must be an integer, got 'x'",
        ),
        (
            {"training": {"metrics": []}},
            "spec.training.metrics: must have 1 to 9 items, got a list of 0 items",
        ),
        ({"training": "fast"}, "spec.training: must be a mapping, got 'fast'"),
        (
            {"training": {"optimizer": "adm"}},
            "spec.training.optimizer: must be one of sgd, momentum, adam, adamw, rmsprop, adagrad, "
            "nadam, got 'adm' (did you mean 'adam'?)",
        ),
        (
            {"training": {"batchsize": 64}},
            "spec.training.batchsize: unknown field (did you mean 'batchSize'?)",
        ),
        (
            {"training": {"batch_size": 64}},
            "spec.training.batch_size: unknown field (did you mean 'batchSize'?)",
        ),
        (
            {"workers": {"resources": {"requests": {"cpu": "lots"}}}},
            "spec.workers.resources.requests.cpu: must be a Kubernetes quantity such as 500m, 2, "
            "1.5 or 16Gi, got 'lots'",
        ),
    ],
)
def test_schema_error_names_the_field_and_what_is_allowed(
    patch: dict[str, Any], expected: str
) -> None:
    assert expected in errors(patch)


def test_unknown_field_without_a_close_match_lists_the_allowed_ones() -> None:
    [message] = errors({"storage": {"zzz": 1}})
    assert message.startswith("spec.storage.zzz: unknown field; allowed here: claimName, size")


def test_missing_required_field_says_what_to_write() -> None:
    m = manifest({"data": {}})
    assert [str(p) for p in validate(m).errors] == [
        "spec.data.format: required; must be one of csv, tfrecord, npz, synthetic"
    ]
    no_spec = {k: v for k, v in m.items() if k != "spec"}
    assert [str(p) for p in validate(no_spec).errors] == ["spec: required"]


@pytest.mark.parametrize(
    ("value", "shown"), [(float("nan"), ".nan"), (float("inf"), ".inf"), (float("-inf"), "-.inf")]
)
def test_nan_and_inf_are_errors(value: float, shown: str) -> None:
    assert errors({"training": {"learningRate": value}}) == [
        f"spec.training.learningRate: must be a finite number, got {shown}"
    ]


def test_nan_from_yaml_is_an_error() -> None:
    [doc] = iter_documents("spec:\n  training: {learningRate: .nan}\n")
    assert isinstance(doc, Document)
    m = manifest(merged({"data": {"format": "synthetic"}}, doc.data["spec"]))
    assert "must be a finite number" in str(validate(m).errors[0])


def test_envelope_errors() -> None:
    m = manifest()
    assert [str(p) for p in validate({**m, "apiVersion": "tftj.dev/v1"}).errors] == [
        "apiVersion: must be tftj.dev/v1alpha1, got 'tftj.dev/v1'"
    ]
    assert "kind: must be TFTrainingJob, got 'Job'" in [
        str(p) for p in validate({**m, "kind": "Job"}).errors
    ]
    assert [str(p) for p in validate({**m, "metadata": {}}).errors] == ["metadata.name: required"]
    assert validate({**m, "metadata": {"generateName": "run-"}}).ok
    assert [str(p) for p in validate(["not", "a", "mapping"]).errors] == [
        "a manifest must be a mapping, got a list of 3 items"
    ]


def test_bad_name_does_not_hide_spec_errors() -> None:
    m = manifest({"data": {"format": "csv"}}, name="Bad_Name")
    paths = [p.path for p in validate(m).errors]
    assert paths == ["metadata.name", "spec.data.path"]


def test_duplicate_keys_are_errors_with_path_and_both_lines() -> None:
    text = "a: 1\nspec:\n  training:\n    learningRate: 0.1\n    epochs: 3\n    learningRate: 10\n"
    text += "---\nnext: document\n"
    first, second = iter_documents(text)
    assert isinstance(first, LoadError)
    assert str(first) == "spec.training.learningRate: line 6: duplicate key (first at line 4)"
    assert isinstance(second, Document) and second.data == {"next": "document"}


def test_yaml_syntax_error_reports_its_line_and_document() -> None:
    text = "a: 1\n---\nb: 2\n---\nc: [1, 2\nd: 3\n"
    docs = list(iter_documents(text))
    assert [type(d).__name__ for d in docs] == ["Document", "Document", "LoadError"]
    error = docs[2]
    assert isinstance(error, LoadError) and error.index == 2 and error.line is not None
    assert str(error).startswith(f"line {error.line}: YAML: ")
    assert error.line >= 5


def test_multi_document_streams_keep_their_indexes() -> None:
    docs = list(iter_documents("a: 1\n---\n---\nb: 2\n"))
    assert [(d.index, d.data) for d in docs if isinstance(d, Document)] == [
        (0, {"a": 1}),
        (1, None),
        (2, {"b": 2}),
    ]


def test_load_one_rejects_several_documents() -> None:
    with pytest.raises(ValueError, match="expected one YAML document, found 2"):
        load_one("a: 1\n---\nb: 2\n")


def test_problems_point_at_their_line() -> None:
    text = (
        "spec:\n  training:\n    learningRate: 5\n    metrics: [loss,\n      accuracy]\n"
        "  model:\n    hiddenUnits:\n    - 1\n    - x\n  data: {}\n"
    )
    [doc] = iter_documents(text)
    assert isinstance(doc, Document)
    assert line_of(doc.node, "spec.training.learningRate") == 3
    assert line_of(doc.node, "spec.training.metrics[1]") == 5
    assert line_of(doc.node, "spec.model.hiddenUnits[1]") == 9
    assert line_of(doc.node, "spec.data.format") == 10  # missing: where to add it
