"""Benchmark the real-node tier and record it in docs/benchmarks.md ("## Real node").

What is measured, in this one run on this machine:
  1. Cost of the tier: the build times the caches recorded at their last build (node
     binaries by testbin/build.sh, images by testbin/images.sh), the warm cost of
     `make testbin` + `make images` now (everything cached), and the start of a cluster with
     a real node against one without, started back to back (the baseline).
  2. `kubectl apply` of a 2-worker TFTrainingJob -> the chief's first training step on the
     real node (operator in the cluster, from the chart), split into: scheduling (apply ->
     both pods bound), container start (-> both containers running), TensorFlow import and
     set-up (-> the chief's /metrics answers), first step (-> /metrics reports step >= 1);
     against `tftj run` of the same spec, split the same way from its start, in the same run.
  3. With --tier: the wall time of the whole tests/node tier (its own cluster, as `make test`
     runs it), against the cluster start measured in 1.

Usage: python bench/node_bench.py [--no-write] [--tier]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchdoc import write_section

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "testbin"))
sys.path.insert(0, str(REPO / "bench"))

from chartoperator import for_kubeconfig  # noqa: E402
from localcluster import LocalCluster, default_nodes  # noqa: E402
from tftj.trainerprogress import read_trainer_progress  # noqa: E402
from trainer_bench import SPEC, first_step_marks  # noqa: E402

SECTION = "## Real node"
#: The first (cold) build on the 2-core machine, from bench/cold_make_test.sh's run of
#: 2026-12-01: not re-measurable in a run that finds the caches warm.
FIRST_BUILD = (
    "First build on a fresh machine (bench/cold_make_test.sh, 2026-12-01, 2 cores, little "
    "other load): base image 6.7 min, operator image 5.9 min, trainer image 15.1 min (pip "
    "downloads TensorFlow), containerd 1.4 min, CoreDNS 3.7 min, kubelet + kube-proxy 0.6 min"
    " once the control plane's Go build cache exists, Prometheus 3.16 "
    "(tests/node/test_prometheus.py; tags remove_all_sd enable_kubernetes_sd, no UI assets) "
    "3.6 min: the node tier's images build beside the Go builds, whose node part adds ~9 min "
    'to them (section "make test on a fresh machine"). After a code change: operator ~0.5-1 '
    "min, trainer ~1-3 min (the dependency layers stay cached). The table above is each "
    "piece's last build on this machine, whatever the load was then."
)
CACHE = Path.home() / ".cache" / "tftj"


def last_build_seconds() -> dict[str, float]:
    """What the caches recorded at each piece's last build (0 when unknown): cold for a first
    build, less when Go's build cache or buildah's layer cache already held parts of it."""
    found: dict[str, float] = {}
    dirs = (REPO / "testbin" / "bin" / ".cache-dirs").read_text().split()
    for d in dirs:
        name = Path(d).name.split("-v")[0]
        if name in ("node", "containerd", "coredns", "prometheus"):
            found[name] = float((Path(d) / ".build-seconds").read_text())
    images = json.loads((REPO / "testbin" / "bin" / "images.json").read_text())
    for name, image in images.items():
        sidecar = Path(image["archive"] + ".build-seconds")
        found[f"image {name}"] = float(sidecar.read_text()) if sidecar.exists() else 0.0
    base = CACHE / "images" / "base.build-seconds"
    found["image base"] = float(base.read_text()) if base.exists() else 0.0
    return found


def timed(cmd: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    return time.monotonic() - started


def start_seconds(real_node: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="node-bench-") as tmp:
        nodes = default_nodes(gpu_nodes=1, cpu_nodes=0 if real_node else 1, gpu_taint=real_node)
        cluster = LocalCluster(
            tmp, nodes=nodes, real_node=real_node, die_with_parent=True, start_timeout=300
        )
        started = time.monotonic()
        cluster.start()
        seconds = time.monotonic() - started
        cluster.stop()
        return seconds


def apply_to_first_step(cluster: LocalCluster) -> dict[str, float]:
    """Marks (seconds after `kubectl apply`) of the phases of a 2-worker job's start."""
    spec = json.loads(json.dumps(SPEC))
    spec["workers"].update(replicas=2, resources={"requests": {"cpu": "250m", "memory": "512Mi"}})
    spec["training"]["epochs"] = 1000  # deleted once the first step is seen
    job = {
        "apiVersion": "tftj.dev/v1alpha1",
        "kind": "TFTrainingJob",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": spec,
    }
    marks: dict[str, float] = {}
    started = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=json.dumps(job))
    try:
        deadline = started + 600
        while time.monotonic() < deadline and "first step" not in marks:
            now = time.monotonic() - started
            pods = json.loads(
                cluster.kubectl(
                    "get", "pods", "-n", "default", "-l", "tftj.dev/job-name=bench", "-o", "json"
                ).stdout
            )["items"]
            if len(pods) == 2 and all(p["spec"].get("nodeName") for p in pods):
                marks.setdefault("scheduled", now)
            statuses = [(p.get("status", {}).get("containerStatuses") or [{}])[0] for p in pods]
            if len(pods) == 2 and all("running" in s.get("state", {}) for s in statuses):
                marks.setdefault("containers running", now)
            chief = next(
                (
                    p
                    for p in pods
                    if p["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index")
                    == "0"
                ),
                None,
            )
            ip = (chief or {}).get("status", {}).get("podIP")
            if ip and "containers running" in marks:
                progress = read_trainer_progress(ip, 9400, 0.5)
                if progress is not None:
                    marks.setdefault("metrics up", now)
                    if progress.step >= 1:
                        marks["first step"] = now
            time.sleep(0.1)  # polling interval
    finally:
        cluster.kubectl("delete", "tftj", "bench", "-n", "default", "--wait=false")
    if "first step" not in marks:
        raise RuntimeError(f"no first step within 600 s: {marks}")
    return marks


def tier_seconds() -> float:
    """Wall time of `pytest tests/node`; raises when the tier fails (no figure from a red run)."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/node"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tests/node failed:\n{proc.stdout[-5000:]}")
    print(proc.stdout.splitlines()[-1])
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--tier", action="store_true", help="also time `pytest tests/node`")
    args = parser.parse_args()

    cold = last_build_seconds()
    warm_build = timed(["bash", "testbin/build.sh"])
    warm_images = timed(["bash", "testbin/images.sh"])
    plain_start = start_seconds(real_node=False)
    node_start = start_seconds(real_node=True)

    with tempfile.TemporaryDirectory(prefix="node-bench-") as tmp:
        cluster = LocalCluster(
            tmp,
            nodes=default_nodes(gpu_nodes=1, cpu_nodes=0, gpu_taint=True),
            real_node=True,
            die_with_parent=True,
            start_timeout=300,
        )
        cluster.start()
        try:
            for_kubeconfig(cluster.kubeconfig, cluster.bin_dir).install()
            marks = apply_to_first_step(cluster)
        finally:
            cluster.stop()
    local_marks = first_step_marks(2)
    local = local_marks["first step"]
    tier = tier_seconds() if args.tier else None
    load = os.getloadavg()[0]

    phases = [
        ("scheduling (apply -> both pods bound)", marks["scheduled"], None),
        (
            "container start (-> both running)",
            marks["containers running"] - marks["scheduled"],
            None,
        ),
        (
            "TensorFlow import + set-up (-> chief /metrics up)",
            marks["metrics up"] - marks["containers running"],
            local_marks["metrics up"],
        ),
        (
            "first step (-> step >= 1)",
            marks["first step"] - marks["metrics up"],
            local_marks["first step"] - local_marks["metrics up"],
        ),
        ("total", marks["first step"], local),
    ]
    cold_rows = "\n".join(
        f"| {k} | {v / 60:.1f} min |" if v else f"| {k} | not recorded |"
        for k, v in sorted(cold.items())
    )
    phase_rows = "\n".join(
        f"| {name} | {sec:.1f} s | {'-' if base is None else f'{base:.1f} s'} |"
        for name, sec, base in phases
    )
    tier_text = (
        ""
        if tier is None
        else f"""
The whole tests/node tier (`python -m pytest tests/node`, its own cluster with the real node
and the chart-installed operator): {tier / 60:.1f} min, of which the cluster start above is
{node_start / tier:.0%}.
"""
    )
    body = f"""{SECTION}

`python bench/node_bench.py` (2 cores shared with other work; load average {load:.1f}).
Everything below was measured in one run, except the build times, which the caches
recorded at their last build (`.build-seconds` next to each cache entry; a rebuild after a
code change for operator/trainer, where buildah's layer cache keeps the dependencies).

| piece | last build |
|---|---|
{cold_rows}

{FIRST_BUILD}

Warm (everything cached): `bash testbin/build.sh` {warm_build:.1f} s, `bash testbin/images.sh`
{warm_images:.1f} s. Cluster start: {node_start:.1f} s with the real node (containerd, image
import, CoreDNS, kubelet Ready, PVs) against {plain_start:.1f} s without it, started back to
back: the node adds {node_start - plain_start:.1f} s ({node_start / plain_start:.1f}x).

`kubectl apply` of a 2-worker TFTrainingJob -> the chief's first training step on the real
node (operator in the cluster, installed by the chart): {marks["first step"]:.1f} s, against
{local:.1f} s for `tftj run` of the same spec to its first step: Kubernetes adds
{marks["first step"] - local:.1f} s ({marks["first step"] / local:.1f}x). `tftj run` has no
scheduling or container start; its import phase runs from the command's start.

| phase | real node | `tftj run` |
|---|---|---|
{phase_rows}
{tier_text}"""
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
