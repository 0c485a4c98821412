#!/usr/bin/env python3
"""Operator benchmark: N TFTrainingJobs x W workers applied at once on kwok nodes.

Measured in ONE run on one fresh local control plane, so the operator's cost is a ratio to the
control plane's own floor:

- floor: the same worker Jobs (Indexed, W pods, same pod shape) created directly with one
  `kubectl create`s: create -> Job exists, -> all W pods Running (p50/p95 over jobs);
- operator: N TFTrainingJobs created the same way, the operator running under its
  ServiceAccount: apply -> worker Job created, apply -> all W pods Running (p50/p95);
  operator CPU seconds and peak RSS over that phase;
- webhook: AdmissionReview latency p50/p99 at C concurrent requests, sent straight to the
  webhook, and `kubectl create --dry-run=server` latency through the apiserver with the webhook
  vs. without it (the apiserver's own floor).

Writes the "## Operator" section of docs/benchmarks.md (other sections are left alone).

    .venv/bin/python bench/operator_bench.py [--jobs 200 --workers 4 --concurrency 50]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import copy
import datetime as dt
import json
import os
import platform
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "testbin"), str(REPO / "operator")]

from benchdoc import write_section  # noqa: E402
from devoperator import WEBHOOK_PATH, Admin, OperatorProcess, install, training_job  # noqa: E402
from localcluster import LocalCluster, NodeSpec  # noqa: E402

HOLD = {"testbin.tftj.dev/hold": "true"}  # pods stay Running: "all Running" is the end point
SMALL = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Watcher:
    """Records, per job name, when its worker Job appeared and when all its pods ran."""

    def __init__(self, admin: Admin, namespace: str, workers: int, label: str) -> None:
        self.admin, self.namespace, self.workers, self.label = admin, namespace, workers, label
        self.job_seen: dict[str, float] = {}
        self.running: dict[str, set[str]] = {}
        self.all_running: dict[str, float] = {}
        self._procs: list[subprocess.Popen[str]] = []
        self.seen: set[tuple[str, str]] = set()
        self.admitted: dict[str, float] = {}
        self.filled = 0  # records that came from fill_in, not from the watch
        self._stopped = False

    # One short line per event (label value, name, phase): parsing full JSON objects was too
    # slow to keep up with 800 pods, and the apiserver closes a watch that falls behind.
    TEMPLATE = '{.metadata.labels.%s} {.metadata.name} {.status.phase}{"\\n"}'

    # The jobs themselves (tftj's, or the peer's TFJobs in bench/peer_bench.py): by name.
    OWN_KINDS = frozenset({"tftrainingjobs", "tfjobs"})
    OWN_TEMPLATE = '{.metadata.name} {.metadata.name} -{"\\n"}'

    def _watch(self, kind: str) -> None:
        label = self.label.replace(".", "\\.")
        while not self._stopped:  # a watch the apiserver closed is reopened
            own = kind in self.OWN_KINDS  # not labelled: keyed by name
            proc = subprocess.Popen(
                [
                    self.admin.binary,
                    f"--kubeconfig={self.admin.kubeconfig}",
                    "-n",
                    self.namespace,
                    "get",
                    kind,
                    *([] if own else ["-l", self.label]),
                    "--watch",
                    "-o",
                    "jsonpath=" + (self.OWN_TEMPLATE if own else self.TEMPLATE % label),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            self._procs.append(proc)
            assert proc.stdout is not None
            for line in proc.stdout:
                parts = line.split()
                if len(parts) >= 2:
                    self._on(kind, parts[0], parts[1], parts[2] if len(parts) > 2 else "")
            proc.wait()

    def _on(self, kind: str, owner: str, name: str, phase: str) -> None:
        now = time.monotonic()
        self.seen.add((kind, owner))
        if kind in self.OWN_KINDS:
            self.admitted.setdefault(owner, now)
        elif kind == "jobs":
            self.job_seen.setdefault(owner, now)
        elif phase == "Running":
            pods = self.running.setdefault(owner, set())
            pods.add(name)
            if len(pods) >= self.workers:
                self.all_running.setdefault(owner, now)

    def start(self, *extra_kinds: str) -> None:
        """Open both watches and prove they deliver (a sentinel Job and pod are seen) before
        the clock starts: a watch still connecting would report late arrival times."""
        for kind in ("jobs", "pods", *extra_kinds):
            threading.Thread(target=self._watch, args=(kind,), daemon=True).start()
        labels = {self.label: "sentinel"}
        self.admin.apply(
            [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {"name": "sentinel", "namespace": self.namespace, "labels": labels},
                    "spec": {
                        "suspend": True,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "c", "image": "sentinel"}],
                            }
                        },
                    },
                },
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "sentinel", "namespace": self.namespace, "labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "sentinel"}]},
                },
            ]
        )
        deadline = time.monotonic() + 60
        while not {("jobs", "sentinel"), ("pods", "sentinel")} <= self.seen:
            if time.monotonic() > deadline:
                raise TimeoutError("the benchmark's watches never saw the sentinel objects")
            time.sleep(0.05)

    def fill_in(self) -> None:
        """A kubectl watch can miss events under load (seen once at 200 x 4: every pod
        Running, the watch silent until the timeout). List once and record what is missing at
        the time of this listing: late, so it can only make a phase look slower; counted in
        `filled` and reported."""
        label = self.label.replace(".", "\\.")
        for kind in ("jobs", "pods"):
            out = self.admin(
                "get",
                kind,
                "-n",
                self.namespace,
                "-l",
                self.label,
                "-o",
                "jsonpath={range .items[*]}" + self.TEMPLATE % label + "{end}",
            )
            before = (len(self.job_seen), len(self.all_running))
            for line in out.stdout.splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    self._on(kind, parts[0], parts[1], parts[2] if len(parts) > 2 else "")
            self.filled += len(self.job_seen) - before[0] + len(self.all_running) - before[1]
        print(
            f"bench: {self.namespace}: a watch missed events; filled in {self.filled}",
            file=sys.stderr,
        )

    def stop(self) -> None:
        self._stopped = True
        for proc in self._procs:
            proc.terminate()


def wait_all(watcher: Watcher, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last, progressed = -1, time.monotonic()
    while len(watcher.all_running) < n and time.monotonic() < deadline:
        time.sleep(0.2)
        if len(watcher.all_running) != last:
            last, progressed = len(watcher.all_running), time.monotonic()
        elif time.monotonic() - progressed > STALL_SECONDS:
            watcher.fill_in()
            progressed = time.monotonic()
    if len(watcher.all_running) < n:
        raise TimeoutError(f"only {len(watcher.all_running)}/{n} jobs had all pods Running")


def floor_job(name: str, workers: int) -> dict[str, Any]:
    """The worker Job shape the operator builds, created directly (no operator)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{name}-a0", "labels": {"bench/job": name}},
        "spec": {
            "completionMode": "Indexed",
            "completions": workers,
            "parallelism": workers,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"bench/job": name, **HOLD}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "trainer",
                            "image": "tftj/trainer:0.1.0",
                            "command": ["python", "-m", "tftj_trainer"],
                            "resources": SMALL,
                        }
                    ],
                },
            },
        },
    }


def operator_children(
    names: list[str], workers: int, namespace: str, *, as_pods: bool = False
) -> list[dict[str, Any]]:
    """What the operator creates for each of held_jobs(): its ConfigMap, headless Service and
    attempt-0 worker Job, built by the operator's own code, to be created directly (no
    operator, no TFTrainingJob): the floor of tftj's design, apart from the reconcile.

    `as_pods`: the worker Job replaced by the pods its controller would create: the floor of
    a design in which the operator creates the pods itself, as the Go peer does.
    """
    from tftj.api.models import TFTrainingJobSpec
    from tftj.api.resolve import resolve
    from tftj.operator.children import attempt_job, static_children

    objects = []
    for manifest in held_jobs(names, workers):
        name = manifest["metadata"]["name"]
        job = {**manifest, "metadata": {"name": name, "namespace": namespace, "uid": "-"}}
        resolved = resolve(
            TFTrainingJobSpec.model_validate(manifest["spec"]), name=name, namespace=namespace
        )
        worker_job = attempt_job(job, resolved, 0)
        for child in [
            *static_children(job, resolved),
            *(indexed_pods(worker_job) if as_pods else [worker_job]),
        ]:
            # No owner to point to: the garbage collector would delete them at once.
            child["metadata"].pop("ownerReferences", None)
            objects.append(child)
    return objects


def indexed_pods(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods the Job controller makes of an Indexed Job: the template, plus per index the
    index annotation and label, the JOB_COMPLETION_INDEX variable and hostname <job>-<index>."""
    from tftj.operator.status import INDEX_ANNOTATION as INDEX_KEY

    name, template = job["metadata"]["name"], job["spec"]["template"]
    meta = template.get("metadata", {})
    variable = {
        "name": "JOB_COMPLETION_INDEX",
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}},
    }
    pods = []
    for index in range(job["spec"]["completions"]):
        spec = copy.deepcopy(template["spec"])
        for container in spec["containers"]:
            container["env"] = [*container.get("env", []), variable]
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-{index}",
                    "namespace": job["metadata"]["namespace"],
                    "labels": {**meta.get("labels", {}), INDEX_KEY: str(index)},
                    "annotations": {**meta.get("annotations", {}), INDEX_KEY: str(index)},
                },
                "spec": {**spec, "hostname": f"{name}-{index}"},
            }
        )
    return pods


def held_jobs(names: list[str], workers: int) -> list[dict[str, Any]]:
    """The burst's TFTrainingJobs: small workers that kwok holds Running until deleted."""
    return [
        training_job(
            n, replicas=workers, run_seconds=None, pod_labels=HOLD, workers={"resources": SMALL}
        )
        for n in names
    ]


def warm_up(admin: Admin) -> None:
    """One job end to end first: the operator's watches are established and its code paths
    warm, so the figures are its steady state, not its start-up."""
    admin("create", "namespace", "bench-warmup")
    admin(
        "apply",
        "-n",
        "bench-warmup",
        "-f",
        "-",
        input=json.dumps(training_job("warmup", replicas=1, run_seconds=1)),
    )
    admin(
        "wait", "-n", "bench-warmup", "--for=condition=Succeeded", "tftj/warmup", "--timeout=120s"
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


STALL_SECONDS = 20.0  # no job newly all-Running for this long: check the watches (fill_in)
CREATE_CLIENTS = 8  # parallel `kubectl create` processes: "applied at once", not one by one


def apply_many(admin: Admin, namespace: str, items: list[dict[str, Any]]) -> float:
    """Create `items` from CREATE_CLIENTS kubectl processes in parallel; return the start time."""
    chunks = [items[i::CREATE_CLIENTS] for i in range(CREATE_CLIENTS)]
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(CREATE_CLIENTS) as pool:
        list(
            pool.map(
                lambda chunk: admin(
                    "create",
                    "-n",
                    namespace,
                    "-f",
                    "-",
                    timeout=900,
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": chunk}),
                ),
                [c for c in chunks if c],
            )
        )
    return start


def phase(watcher: Watcher, start: float, names: list[str]) -> dict[str, float]:
    created = [watcher.job_seen[n] - start for n in names if n in watcher.job_seen]
    running = [watcher.all_running[n] - start for n in names if n in watcher.all_running]
    return {
        "created_p50": pct(created, 50),
        "created_p95": pct(created, 95),
        "running_p50": pct(running, 50),
        "running_p95": pct(running, 95),
        "last_running": max(running) if running else float("nan"),
    }


def admission_review(
    manifest: dict[str, Any],
    *,
    group: str = "tftj.dev",
    version: str = "v1alpha1",
    kind: str = "TFTrainingJob",
) -> bytes:
    """A CREATE AdmissionReview of `manifest` as the apiserver sends it."""
    resource = kind.lower() + "s"
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "operation": "CREATE",
                "kind": {"group": group, "version": version, "kind": kind},
                "resource": {"group": group, "version": version, "resource": resource},
                "requestKind": {"group": group, "version": version, "kind": kind},
                "requestResource": {"group": group, "version": version, "resource": resource},
                "name": manifest["metadata"]["name"],
                "namespace": "bench",
                "userInfo": {"username": "bench"},
                "object": manifest,
                "oldObject": None,
                "dryRun": False,
            },
        }
    ).encode()


def webhook_latencies(proc: OperatorProcess, concurrency: int, total: int) -> list[float]:
    ctx = ssl.create_default_context(cafile=str(proc.cert_dir / "ca.crt"))
    url = f"https://127.0.0.1:{proc.webhook_port}{WEBHOOK_PATH}"
    body = admission_review(training_job("hook", replicas=4, run_seconds=None))

    def one(_: int) -> float:
        started = time.perf_counter()
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            answer = json.loads(resp.read())
        assert answer["response"]["allowed"], answer
        return time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(total)))


def dry_run_latencies(admin: Admin, namespace: str, concurrency: int, total: int) -> list[float]:
    manifest = json.dumps(
        {
            **training_job("dry", replicas=4, run_seconds=None),
            "metadata": {"name": "dry", "namespace": namespace},
        }
    )

    def one(_: int) -> float:
        started = time.perf_counter()
        admin("create", "--dry-run=server", "-f", "-", input=manifest)
        return time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(total)))


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (tftj's webhook runs in a child process)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue  # the thread ended since the listing (the operator's come and go)
        for child in children:
            pids += tree(int(child))
    return pids


def tree_cpu(pid: int) -> float:
    """CPU-seconds of `pid` and its live descendants."""
    return sum(cpu_seconds(p) for p in tree(pid))


def _summed_mib(pids: list[int], proc_file: str, field: str) -> float:
    """The `field` ("Name: N kB") of /proc/<pid>/`proc_file`, summed over `pids`, MiB; a
    process that ended since the listing counts 0."""
    total = 0.0
    for p in pids:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{p}/{proc_file}").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1]) / 1024
    return total


def rss_mib(pid: int, field: str = "VmRSS", *, descendants: bool = True) -> float:
    """VmRSS (now) or VmHWM (the most each held since it started) of `pid` and (by default)
    its descendants, summed, in MiB."""
    return _summed_mib(tree(pid) if descendants else [pid], "status", field)


def pss_mib(pid: int) -> float:
    """Proportional set size of `pid` and its descendants, summed, MiB: what they take
    together, pages they share (the webhook processes forked from the operator share its
    imports) counted once in all; a sum of their RSS would count those pages in each."""
    return _summed_mib(tree(pid), "smaps_rollup", "Pss")


def both_rss(pid: int, field: str = "VmRSS") -> str:
    """ "operator process / all its processes" in MiB, as the tables show it: the process's
    VmRSS (now) or VmHWM (its peak), then the PSS now of it and its child processes (the
    webhook processes) together."""
    alone = rss_mib(pid, field, descendants=False)
    return f"{alone:.0f} / {pss_mib(pid):.0f}"


def scale_nodes(pods: int) -> list[NodeSpec]:
    """kwok nodes with room for `pods` small pods (and the warm-up), ~900 to a node: the
    default three nodes hold ~2,900 of them, not 1,000 jobs x 4."""
    return [
        NodeSpec(f"kwok-cpu-{i}", cpu="256", memory="2Ti", pods="1000")
        for i in range(max(3, -(-pods // 900)))
    ]


def baseline_tree(revision: str, into: Path) -> Path:
    """The `operator/` directory of git `revision`, exported to `into`: an operator run from
    its own source in the same run (and one that edits to the checkout cannot change)."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "operator"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "operator"


@contextlib.contextmanager
def bench_operator(
    state: Path, pods: int, source_dir: Path | None, namespace: str
) -> Iterator[tuple[Admin, OperatorProcess, int]]:
    """A fresh control plane with kwok nodes for `pods`, the CRD and webhook installed, one
    operator (from `source_dir`, default this checkout) started and warmed up, `namespace`
    created: (admin, the operator, its pid). Stops it all on exit."""
    with LocalCluster(state / "cluster", nodes=scale_nodes(pods), die_with_parent=True) as cluster:
        admin = Admin(cluster.kubeconfig)
        install(admin)
        proc = OperatorProcess(admin, state / "operator", ["--workers=16"], source_dir=source_dir)
        try:
            proc.start(die_with_parent=True)
            assert proc.process is not None
            admin("create", "namespace", namespace)
            warm_up(admin)
            yield admin, proc, proc.process.pid
        finally:
            proc.stop()


@contextlib.contextmanager
def profiled(pid: int, output: Path | None) -> Iterator[None]:
    """py-spy samples the operator (all threads, 50 Hz) while the block runs, into `output`
    as collapsed stacks ("frame;frame;... count" lines); nothing when `output` is None."""
    if output is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    recorder = subprocess.Popen(
        [
            *(spy, "record", "--pid", str(pid), "--rate", "50", "--format", "raw"),
            *("--threads", "--nonblocking", "--output", str(output)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes the profile when interrupted
        recorder.wait(timeout=60)
        print(f"profile of the operator during the burst: {output}")


def operator_phase(
    args: argparse.Namespace,
    state: Path,
    names: list[str],
    source_dir: Path | None,
    *,
    webhook: bool,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One operator (from `source_dir`, default this checkout) on a fresh control plane: the
    burst's latencies, its CPU and memory, and (`webhook`) the admission figures."""
    result: dict[str, Any] = {}
    pods = len(names) * args.workers
    with bench_operator(state, pods, source_dir, "bench-op") as (admin, proc, pid):
        watcher = Watcher(admin, "bench-op", args.workers, "tftj.dev/job-name")
        watcher.start("tftrainingjobs")
        result["idle_rss"] = both_rss(pid)
        cpu0 = tree_cpu(pid)
        result["load"] = [os.getloadavg()[0]]
        manifests = held_jobs(names, args.workers)
        with profiled(pid, profile):
            t0 = apply_many(admin, "bench-op", manifests)
            wait_all(watcher, len(names), args.timeout)
        result.update(phase(watcher, t0, names))
        result["filled"] = watcher.filled
        result["admitted"] = [watcher.admitted[n] - t0 for n in names if n in watcher.admitted]
        result["cpu"] = tree_cpu(pid) - cpu0
        result["load"].append(os.getloadavg()[0])
        watcher.stop()
        # Every job live: what the operator holds for them once the burst has settled.
        result["live_rss"] = both_rss(pid)
        result["peak_rss"] = both_rss(pid, "VmHWM")
        if webhook:
            admin("create", "namespace", "bench")
            result["direct"] = webhook_latencies(proc, args.concurrency, args.requests)
            result["dry_with"] = dry_run_latencies(
                admin, "bench", args.concurrency, args.requests // 5
            )
            proc.stop()
            admin("delete", "validatingwebhookconfiguration", "tftj-validate-local", check=False)
            result["dry_without"] = dry_run_latencies(
                admin, "bench", args.concurrency, args.requests // 5
            )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the operator of git revision REV (same run, same burst): before/after",
    )
    parser.add_argument(
        "--candidate",
        metavar="REV",
        help="run the operator of git revision REV as the candidate (default: this checkout)",
    )
    parser.add_argument("--no-webhook", action="store_true", help="skip the admission measurements")
    parser.add_argument(
        "--section",
        default="## Operator",
        help="the docs/benchmarks.md section to write (default: %(default)s)",
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="record the candidate operator during the burst with py-spy (collapsed stacks)",
    )
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="tftj-bench-operator-"))
    names = [f"b{i:03d}" for i in range(args.jobs)]
    pods = args.jobs * args.workers
    # Each phase gets a fresh control plane (same binaries, same machine, same run): deleting
    # 800 pods between phases takes minutes and would load the second phase.
    try:
        # Other work on the machine shares the 2 cores with the control plane: say how busy it
        # was (1-minute load average when each phase starts and when the last one ends).
        loads = [os.getloadavg()[0]]
        # ---- floor: the same Jobs straight through kubectl
        with LocalCluster(
            state / "floor", nodes=scale_nodes(pods), die_with_parent=True
        ) as cluster:
            admin = Admin(cluster.kubeconfig)
            admin("create", "namespace", "bench-floor")
            watcher = Watcher(admin, "bench-floor", args.workers, "bench/job")
            watcher.start()
            t0 = apply_many(admin, "bench-floor", [floor_job(n, args.workers) for n in names])
            wait_all(watcher, args.jobs, args.timeout)
            floor = phase(watcher, t0, names)
            filled = {"floor": watcher.filled}
            watcher.stop()

        before = None
        if args.baseline:
            source = baseline_tree(args.baseline, state / "baseline-src")
            before = operator_phase(args, state / "baseline", names, source, webhook=False)
            filled["baseline"] = before["filled"]
        candidate = (
            baseline_tree(args.candidate, state / "candidate-src") if args.candidate else None
        )
        operator = operator_phase(
            args,
            state / "candidate",
            names,
            candidate,
            webhook=not args.no_webhook,
            profile=args.profile,
        )
        filled["operator"] = operator["filled"]
        loads += operator["load"]
    finally:
        shutil.rmtree(state, ignore_errors=True)

    text = report(args, floor, before, operator, filled, loads)
    print(text)
    if not args.no_write:
        print(f"written to {write_section(args.section, text)}")
    return 0


def candidate_label(args: argparse.Namespace) -> str:
    return f"operator at `{args.candidate}`" if args.candidate else "operator (this tree)"


def report(
    args: argparse.Namespace,
    floor: dict[str, float],
    before: dict[str, Any] | None,
    operator: dict[str, Any],
    filled: dict[str, int],
    loads: list[float],
) -> str:
    ms = 1000.0
    keys = [
        ("apply -> worker Job created, p50", "created_p50"),
        ("apply -> worker Job created, p95", "created_p95"),
        ("apply -> all workers Running, p50", "running_p50"),
        ("apply -> all workers Running, p95", "running_p95"),
        ("apply -> last job all Running", "last_running"),
    ]
    baseline = f"operator at `{args.baseline}`" if args.baseline else ""
    lines = [
        args.section,
        "",
        f"`bench/operator_bench.py {' '.join(sys.argv[1:])}` — "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; one "
        "local control plane (kube-apiserver/controller-manager/scheduler 1.36, etcd, kwok) on "
        "the same machine as the operator (a fresh one per phase, kwok nodes sized for the "
        f"pods). {args.jobs} jobs x {args.workers} workers created at once (8 parallel "
        "`kubectl create`). The floor is the same worker Jobs created directly the same way in "
        "the same run (the Job controller, scheduler and kwok alone). Operator: `--workers=16`, "
        "under its ServiceAccount"
        + (f"; the baseline is the {baseline}, run from its own source" if before else "")
        + ". Load average (1 min) at the floor's start, the operator phase's start "
        f"and its end: {loads[0]:.2f}, {loads[1]:.2f}, {loads[2]:.2f}.",
        "",
    ]
    if before is not None:
        lines += [
            f"| seconds | floor (Jobs via kubectl) | {baseline} | {candidate_label(args)} "
            "| ratio to floor (baseline -> candidate) |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, key in keys:
            base, old, new = floor[key], before[key], operator[key]
            lines.append(
                f"| {label} | {base:.2f} | {old:.2f} | {new:.2f} | "
                f"{old / base:.2f}x -> {new / base:.2f}x |"
            )
    else:
        lines += [
            "| seconds | floor (Jobs via kubectl) | operator (TFTrainingJobs) | ratio |",
            "|---|---:|---:|---:|",
        ]
        for label, key in keys:
            base, new = floor[key], operator[key]
            lines.append(f"| {label} | {base:.2f} | {new:.2f} | {new / base:.2f}x |")
    if any(filled.values()):
        lines += [
            "",
            "A watch missed events: records filled in by a listing after "
            f"{STALL_SECONDS:.0f} s without progress ({filled}), so those phases are reported "
            "late.",
        ]
    admitted = operator["admitted"]
    lines += [
        "",
        f"In the operator phase the TFTrainingJobs themselves exist (admitted through the "
        f"webhook) after p50 {pct(admitted, 50):.2f} s / p95 {pct(admitted, 95):.2f} s; the "
        "rest of the first row is the operator's first reconcile waiting its turn.",
        "",
        "| operator | CPU-seconds (burst) | CPU ms per job | idle RSS MiB | RSS MiB, all live "
        "| peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, run in ((baseline, before), (candidate_label(args), operator)):
        if run is not None:
            lines.append(
                f"| {label} | {run['cpu']:.1f} | {run['cpu'] / args.jobs * ms:.0f} | "
                f"{run['idle_rss']} | {run['live_rss']} | {run['peak_rss']} |"
            )
    lines += [
        "",
        "CPU-seconds are the operator's (its process tree: reconcile, watches and the "
        "webhook's validations of the burst) from the first create to the last job all "
        "Running. RSS: the operator process (peak: its VmHWM) / PSS of it and its webhook "
        "processes together at that moment (forked, they share pages; PSS counts each once); "
        "idle is after one warm-up job, before the burst.",
    ]
    if "direct" in operator:
        direct, dry_with, dry_without = (
            operator["direct"],
            operator["dry_with"],
            operator["dry_without"],
        )
        lines += [
            "",
            f"Admission at {args.concurrency} concurrent requests:",
            "",
            "| milliseconds | p50 | p99 |",
            "|---|---:|---:|",
            f"| webhook alone ({args.requests} AdmissionReviews straight to it) | "
            f"{pct(direct, 50) * ms:.1f} | {pct(direct, 99) * ms:.1f} |",
            f"| `kubectl create --dry-run=server` with the webhook ({len(dry_with)}) | "
            f"{pct(dry_with, 50) * ms:.0f} | {pct(dry_with, 99) * ms:.0f} |",
            f"| same without the webhook: the floor ({len(dry_without)}) | "
            f"{pct(dry_without, 50) * ms:.0f} | {pct(dry_without, 99) * ms:.0f} |",
            "",
            "The kubectl rows include starting a kubectl process per request (the same in both).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
