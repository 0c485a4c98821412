"""Bad inputs end with ONE line naming the problem and the contract's exit code, no traceback.

The worker processes of the cases below are started together (they spend most of their life
importing TensorFlow), then each case checks its own outcome.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from tftj.api.contract import ExitCode

from tests.trainer.conftest import (
    last_line,
    run_tftj,
    trainer_command,
    trainer_env,
    write_manifest,
    write_params,
    write_tfrecord,
)


@dataclass(frozen=True)
class Case:
    code: ExitCode
    expected: tuple[str, ...]  # fragments of the one-line error


def write_csv(path: Path, rows: list[list[object]], header: list[str]) -> Path:
    path.write_text("\n".join(",".join(str(v) for v in row) for row in [header, *rows]) + "\n")
    return path


def csv_params(tmp: Path, name: str, csv: Path, **model: object) -> Path:
    return write_params(
        tmp,
        name,
        {"data": {"format": "csv", "path": str(csv)}, "model": {"outputUnits": 3, **model}},
    )


def make_cases(tmp: Path) -> dict[str, tuple[Path, Case]]:
    good_rows = [[i % 5, (i * 7) % 3, i % 3] for i in range(40)]
    header = ["a", "b", "label"]
    cases: dict[str, tuple[Path, Case]] = {}

    cases["missing data file"] = (
        csv_params(tmp, "missing", tmp / "nowhere" / "train.csv"),
        Case(ExitCode.BAD_DATA, ("data.path", "nowhere/train.csv", "no such file")),
    )
    ragged = write_csv(tmp / "ragged.csv", good_rows, header)
    ragged.write_text(ragged.read_text() + "1,2\n")
    cases["csv with a wrong column count"] = (
        csv_params(tmp, "ragged", ragged),
        Case(ExitCode.BAD_DATA, ("ragged.csv line 42", "expected 3 columns", "got 2")),
    )
    cases["label out of range"] = (
        csv_params(tmp, "labels", write_csv(tmp / "labels.csv", [*good_rows, [1, 1, 7]], header)),
        Case(ExitCode.BAD_DATA, ("label 7", "out of range", "[0, 2]")),
    )
    nan = write_csv(tmp / "nan.csv", [*good_rows, [1, "nan", 2]], header)
    cases["csv with a NaN"] = (
        csv_params(tmp, "nan", nan),
        Case(ExitCode.BAD_DATA, ("nan.csv line 42", "feature 1 is nan", "non-finite")),
    )
    cases.update(tfrecord_cases(tmp))
    unparsable = tmp / "unparsable.params.yaml"
    unparsable.write_text("spec: {training: [unclosed\n")
    cases["params file not YAML"] = (
        unparsable,
        Case(ExitCode.BAD_PARAMETERS, ("unparsable.params.yaml", "line 2", "not valid YAML")),
    )
    invalid = write_params(tmp, "invalid")
    document = yaml.safe_load(invalid.read_text())
    document["spec"]["training"]["learningRate"] = -1.0
    invalid.write_text(yaml.safe_dump(document))
    cases["params failing validation"] = (
        invalid,
        Case(ExitCode.BAD_PARAMETERS, ("spec.training.learningRate", "must be > 0", "got -1")),
    )
    edited = write_params(tmp, "edited")
    document = yaml.safe_load(edited.read_text())
    document["spec"]["training"]["epochs"] = 7
    edited.write_text(yaml.safe_dump(document))
    cases["params edited after resolve"] = (
        edited,
        Case(ExitCode.BAD_PARAMETERS, ("parametersHash", "edited after resolve")),
    )
    cases["params file missing"] = (
        tmp / "absent.yaml",
        Case(ExitCode.BAD_PARAMETERS, ("absent.yaml", "No such file")),
    )
    cases["model builder not importable"] = (
        write_params(tmp, "builder", {"model": {"builder": "no_such_module:build"}}),
        Case(ExitCode.BAD_MODEL, ("model.builder no_such_module:build", "cannot import")),
    )
    return cases


def tfrecord_cases(tmp: Path) -> dict[str, tuple[Path, Case]]:
    """Five good shards but one bad record in shard 3, and the ways a file can be unreadable."""
    rng = np.random.default_rng(0)

    def shards(name: str, bad: bytes | None = None) -> Path:
        directory = tmp / name
        directory.mkdir()
        for i in range(5):
            path = directory / f"part-{i}.tfrecord"
            write_tfrecord(path, rng.normal(size=(20, 4)), rng.integers(0, 3, size=20))
            if i == 3 and bad is not None:
                with tf.io.TFRecordWriter(str(path.with_suffix(".tmp"))) as writer:
                    for n, record in enumerate(tf.data.TFRecordDataset(str(path))):
                        writer.write(bad if n == 7 else record.numpy())
                path.with_suffix(".tmp").rename(path)
        return directory

    def params(name: str, directory: Path, **data: object) -> Path:
        spec = {"format": "tfrecord", "path": str(directory), "numFeatures": 4, **data}
        return write_params(tmp, name, {"data": spec, "model": {"outputUnits": 3}})

    import tensorflow as tf

    def example(values: list[float], label: int) -> bytes:
        feature = {
            "features": tf.train.Feature(float_list=tf.train.FloatList(value=values)),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        }
        return bytes(
            tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
        )

    short = shards("short", example([1.0, 2.0, 3.0], 1))
    truncated = shards("truncated")
    whole = (truncated / "part-2.tfrecord").read_bytes()
    (truncated / "part-2.tfrecord").write_bytes(whole[: len(whole) - 30])
    dangling = shards("dangling")
    (dangling / "part-9.tfrecord").symlink_to(tmp / "gone.tfrecord")
    late = shards("late", example([1.0, 2.0, 3.0, 4.0], 9))
    return {
        "wrong feature length in one shard": (
            params("short", short),
            Case(ExitCode.BAD_DATA, ("short/part-3.tfrecord record 8", "Values size: 3")),
        ),
        "truncated tfrecord": (
            params("truncated", truncated),
            Case(ExitCode.BAD_DATA, ("truncated/part-2.tfrecord record 20", "truncated")),
        ),
        "unreadable shard": (
            params("dangling", dangling),
            Case(ExitCode.BAD_DATA, ("dangling/part-9.tfrecord", "cannot read")),
        ),
        # No pass before training (stepsPerEpoch given, nothing to count or compute): the bad
        # record is met by the training pipeline and named by re-reading the worker's shard.
        "bad label met while training": (
            write_params(
                tmp,
                "late",
                {
                    "data": {
                        "format": "tfrecord",
                        "path": str(late),
                        "numFeatures": 4,
                        "validationSplit": 0.0,
                        "preprocess": {"normalization": "none"},
                    },
                    "model": {"outputUnits": 3},
                    "training": {"stepsPerEpoch": 4, "epochs": 2},
                },
            ),
            Case(ExitCode.BAD_DATA, ("late/part-3.tfrecord record 8", "label 9", "out of range")),
        ),
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Case, int, str]]:
    tmp = tmp_path_factory.mktemp("bad")
    started = {
        name: (
            case,
            subprocess.Popen(
                trainer_command(
                    params,
                    tmp / name.replace(" ", "-"),
                    "--termination-log",
                    str(tmp / f"{name.replace(' ', '-')}.termination"),
                ),
                env=trainer_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for name, (params, case) in make_cases(tmp).items()
    }
    results = {}
    for name, (case, process) in started.items():
        _, err = process.communicate(timeout=180)
        results[name] = (case, process.returncode, err)
    return results


@pytest.mark.parametrize(
    "name",
    [
        "missing data file",
        "csv with a wrong column count",
        "label out of range",
        "csv with a NaN",
        "wrong feature length in one shard",
        "truncated tfrecord",
        "unreadable shard",
        "bad label met while training",
        "params file not YAML",
        "params failing validation",
        "params edited after resolve",
        "params file missing",
        "model builder not importable",
    ],
)
def test_bad_input_ends_with_one_line_and_exit_code(
    outcomes: dict[str, tuple[Case, int, str]],
    name: str,
) -> None:
    case, code, err = outcomes[name]
    assert code == case.code, err
    assert "Traceback" not in err
    line = last_line(err)
    assert line.startswith("tftj-trainer: error: ")
    for fragment in case.expected:
        assert fragment in line, f"{fragment!r} not in {line!r}"


def test_tftj_run_rejects_an_invalid_manifest_naming_the_field(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, "broken", {"training": {"batchSize": 0}})
    result = run_tftj("run", str(path), "--workdir", str(tmp_path / "work"), timeout=60)
    assert result.returncode == ExitCode.BAD_PARAMETERS
    assert "spec.training.batchSize" in result.stderr
    assert "Traceback" not in result.stderr


def test_tftj_run_reports_the_failing_workers_error(tmp_path: Path) -> None:
    """A permanent failure is not retried: one attempt, the worker's line, its exit code."""
    path = write_manifest(tmp_path, "nodata", {"data": {"format": "csv", "path": "missing.csv"}})
    result = run_tftj(
        "run", str(path), "--workers", "2", "--workdir", str(tmp_path / "w"), timeout=120
    )
    assert result.returncode == ExitCode.BAD_DATA, result.stderr
    line = last_line(result.stderr)
    assert line.startswith("tftj run: training failed: worker ")
    # Relative data paths are read relative to the manifest's directory.
    assert str(tmp_path / "missing.csv") in line and "no such file" in line
    assert "restarting" not in result.stderr


def test_tftj_run_refuses_to_resume_checkpoints_of_other_parameters(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "checkpoints" / "checkpoint").write_text("model_checkpoint_path: 'ckpt-1'\n")
    (workdir / "params.yaml").write_text("parametersHash: 0123456789abcdef\n")
    path = write_manifest(tmp_path, "changed")
    result = run_tftj("run", str(path), "--workdir", str(workdir), timeout=60)
    assert result.returncode == ExitCode.BAD_PARAMETERS
    assert "holds checkpoints of other parameters (0123456789abcdef" in result.stderr
    assert "use another --workdir" in result.stderr
