"""The `tftj` command end to end, as a user runs it (subprocess, real files)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TFTJ = Path(sys.executable).with_name("tftj")
BROKEN = Path(__file__).resolve().parent / "broken-manifests"


def tftj(
    *args: str | Path, cwd: Path = REPO, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(TFTJ), *map(str, args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_validate_accepts_the_examples() -> None:
    result = tftj("validate", "examples/")
    assert result.returncode == 0, result.stdout
    assert all(": warning: " in line for line in result.stdout.splitlines())
    assert "3 TFTrainingJob manifest(s)" in result.stderr


def test_validate_rejects_every_broken_manifest_naming_the_field() -> None:
    result = tftj("validate", BROKEN)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    for path in sorted(BROKEN.glob("*.yaml")):
        expected = path.read_text().split("# expect: ", 1)[1].split("\n", 1)[0]
        mine = [line for line in lines if line.startswith(f"{path}:")]
        assert mine, f"{path.name} was not rejected"
        errors = [line for line in mine if ": warning: " not in line]
        assert any(expected in line for line in errors), (path.name, mine)


def test_validate_output_format(tmp_path: Path) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n"
        "apiVersion: tftj.dev/v1alpha1\nkind: TFTrainingJob\nmetadata: {name: lr}\n"
        "spec: {training: {learningRate: -1}, data: {format: synthetic}}\n"
    )
    result = tftj("validate", "-q", bad)
    assert result.returncode == 1
    assert result.stdout == (
        f"{bad}:1: spec.training.learningRate: must be > 0 and <= 10, got -1 (line 8)\n"
    )


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\xff\xfe binary", b"- a\n- list\n", b"just a string", b"a: [1,\n", b"{{{{"],
)
def test_validate_never_shows_a_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.yaml"
    path.write_bytes(content)
    result = tftj("validate", path)
    assert result.returncode in (0, 1)


def test_validate_reads_standard_input() -> None:
    stream = (REPO / "examples" / "minimal.yaml").read_text() + "---\n"
    stream += (BROKEN / "out-of-range.yaml").read_text()
    result = tftj("validate", "-q", "-", stdin=stream)
    assert result.returncode == 1
    assert result.stdout.startswith("-:1: spec.training.learningRate: must be > 0 and <= 10")


def test_validate_missing_path() -> None:
    result = tftj("validate", "no/such/dir")
    assert result.returncode == 1
    assert "no/such/dir: no such file or directory" in result.stdout


def test_resolve_prints_every_value_the_trainer_uses() -> None:
    result = tftj("resolve", "examples/minimal.yaml")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["spec"]["training"]["loss"] == "sparse-categorical-crossentropy"
    assert resolved["derived"]["replicasInSync"] == 1
    assert len(resolved["parametersHash"]) == 16


def test_resolve_local_makes_data_paths_absolute(tmp_path: Path) -> None:
    result = tftj("resolve", "--local", REPO / "examples" / "digits-mlp.yaml", cwd=tmp_path)
    path = yaml.safe_load(result.stdout)["spec"]["data"]["path"]
    assert path == str(REPO / "examples" / "data" / "digits.csv")
    assert Path(path).is_file()


def test_resolve_rejects_an_invalid_manifest() -> None:
    result = tftj("resolve", BROKEN / "out-of-range.yaml")
    assert result.returncode == 1
    assert "spec.training.learningRate: must be > 0 and <= 10, got -1" in result.stderr
    assert result.stdout == ""


def test_explain_a_field() -> None:
    result = tftj("explain", "spec.training.learningRate")
    assert result.returncode == 0
    assert "FIELD:    spec.training.learningRate <number>" in result.stdout
    assert "RANGE:    > 0 and <= 10" in result.stdout
    assert "DEFAULT:  0.001" in result.stdout
    top = tftj("explain")
    assert "spec\t<object> -required-" in top.stdout


def test_explain_unknown_field_suggests_the_right_one() -> None:
    result = tftj("explain", "spec.training.batchsize")
    assert result.returncode == 1
    assert "did you mean 'spec.training.batchSize'?" in result.stderr


def test_crd_and_docs_print_the_checked_in_files() -> None:
    assert tftj("crd").stdout == (REPO / "crds" / "tftrainingjobs.tftj.dev.yaml").read_text()
    assert tftj("docs").stdout == (REPO / "docs" / "parameters.md").read_text()


def test_convert_a_snake_case_config(tmp_path: Path) -> None:
    config = tmp_path / "My_Config.yaml"
    config.write_text(
        "training: {batch_size: 64, epochs: 5, learning_rate: 0.01, optimizer: adamw}\n"
        "model: {hidden_units: [32], output_units: 10}\n"
        "data: {format: synthetic, validation_split: 0.2}\n"
        "workers: {replicas: 2, gpus_per_worker: 0, pod_template: {node_selector: {pool_name: cpu}}}\n"
    )
    result = tftj("convert", config)
    assert result.returncode == 0, result.stderr
    job = yaml.safe_load(result.stdout)
    assert job["metadata"]["name"] == "my-config"
    assert job["spec"]["training"]["batchSize"] == 64
    assert job["spec"]["workers"]["podTemplate"]["nodeSelector"] == {"pool_name": "cpu"}
    out = tmp_path / "job.yaml"
    out.write_text(result.stdout)
    assert tftj("validate", out).returncode == 0


def test_convert_reports_unknown_keys_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("training: {batch_sise: 64}\ndata: {format: synthetic}\n")
    result = tftj("convert", config, "--name", "x")
    assert result.returncode == 1
    assert "training.batch_sise: unknown key (did you mean 'batch_size'?)" in result.stderr
    assert result.stdout == ""


def test_the_ci_recipe_kustomize_build_into_validate(tmp_path: Path) -> None:
    """docs/gitops.md's `kustomize build | tftj validate -`, with kubectl's built-in kustomize
    (the real one, v5) over an overlay that patches the shipped example."""
    kubectl = Path(sys.executable).with_name("kubectl")
    base = tmp_path / "base"
    base.mkdir()
    (base / "job.yaml").write_text((REPO / "examples" / "digits-mlp.yaml").read_text())
    (base / "kustomization.yaml").write_text(
        "resources: [job.yaml]\nconfigMapGenerator: [{name: notes, literals: [owner=ml-team]}]\n"
    )

    def overlay(patch: str) -> subprocess.CompletedProcess[str]:
        over = tmp_path / "overlay"
        over.mkdir(exist_ok=True)
        (over / "kustomization.yaml").write_text(
            "resources: [../base]\nnamePrefix: team-a-\n"
            "patches:\n- target: {kind: TFTrainingJob}\n  patch: |\n"
            + "".join(f"    {line}\n" for line in patch.splitlines())
        )
        built = subprocess.run(
            [str(kubectl), "kustomize", str(over)], capture_output=True, text=True, check=True
        )
        assert "kind: ConfigMap" in built.stdout and "name: team-a-digits-mlp" in built.stdout
        return tftj("validate", "-", stdin=built.stdout)

    good = overlay("- {op: replace, path: /spec/training/epochs, value: 3}")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = overlay("- {op: replace, path: /spec/training/epochs, value: 0}")
    assert bad.returncode == 1
    assert "spec.training.epochs: must be >= 1" in bad.stdout
