"""Bad inputs end with ONE line naming the problem and the contract's exit code, no traceback.

The worker processes of the cases below are started together (they spend most of their life
importing TensorFlow), then each case checks its own outcome.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from tftj.api.contract import ExitCode

from tests.trainer.conftest import (
    PYTHON,
    last_line,
    run_tftj,
    trainer_env,
    write_manifest,
    write_params,
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


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Case, int, str]]:
    tmp = tmp_path_factory.mktemp("bad")
    started = {
        name: (
            case,
            subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "tftj_trainer",
                    "--params",
                    str(params),
                    "--storage-root",
                    str(tmp / name.replace(" ", "-")),
                    "--metrics-port",
                    "0",
                    "--termination-log",
                    str(tmp / f"{name.replace(' ', '-')}.termination"),
                ],
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
