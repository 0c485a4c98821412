"""The pre-commit hook the repository ships (.pre-commit-hooks.yaml), run by the real pre-commit
the way a user's repository runs it: it installs tftj into its own environment (from the package
index: pydantic and PyYAML) and fails a commit that holds an invalid TFTrainingJob."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRE_COMMIT = str(Path(sys.executable).with_name("pre-commit"))
BAD = """\
apiVersion: tftj.dev/v1alpha1
kind: TFTrainingJob
metadata: {name: bad}
spec:
  data: {format: synthetic}
  training: {learningRate: -1}
"""


def run(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PATH": os.environ.get("PATH", "")}
    return subprocess.run(
        [PRE_COMMIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_manifest_is_valid_for_pre_commit(tmp_path: Path) -> None:
    result = run("validate-manifest", str(REPO / ".pre-commit-hooks.yaml"), cwd=REPO, home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_hook_fails_an_invalid_job_and_passes_a_valid_one(tmp_path: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.fail("the hook is tried from a git checkout of the repository", pytrace=False)
    user = tmp_path / "manifests"
    (user / "training").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "minimal.yaml", user / "training" / "ok.yaml")
    subprocess.run(["git", "init", "-q", str(user)], check=True)
    subprocess.run(["git", "-C", str(user), "add", "."], check=True)
    home = tmp_path / "pre-commit-home"
    # try-repo uses the repository's HEAD: the hook as committed.
    ok = run("try-repo", str(REPO), "tftj-validate", "--all-files", cwd=user, home=home)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (user / "training" / "bad.yaml").write_text(BAD)
    subprocess.run(["git", "-C", str(user), "add", "."], check=True)
    bad = run("try-repo", str(REPO), "tftj-validate", "--all-files", cwd=user, home=home)
    assert bad.returncode == 1
    assert "training/bad.yaml:0: spec.training.learningRate: must be > 0" in bad.stdout
    assert "ok.yaml" not in bad.stdout
