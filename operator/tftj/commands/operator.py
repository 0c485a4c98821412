"""`tftj operator`: run the TFTrainingJob operator (reconcile loop, admission webhook, metrics).

Everything tunable for tests and benchmarks (resync and progress intervals, worker count) is a
flag with an environment-variable default (TFTJ_OPERATOR_<FLAG>), so a Deployment can set them
without a new image.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tftj.operator.leaderlease import ElectionConfig

if TYPE_CHECKING:
    from tftj.operator.webhook import WebhookServer


def _env(name: str, default: str) -> str:
    # A string default goes through the argument's `type` like a command-line value, so a
    # bad TFTJ_OPERATOR_* value is a usage error naming the flag, not a traceback (e.g. a
    # Service link variable TFTJ_OPERATOR_WEBHOOK_PORT=tcp://... in a pod).
    return os.environ.get(f"TFTJ_OPERATOR_{name}", default)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "operator",
        help="run the TFTrainingJob operator",
        description="Reconcile TFTrainingJobs into worker Jobs, serve the admission webhook "
        "and the operator's Prometheus metrics.",
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=None,
        help="watch only this namespace (repeatable)",
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)"
    )
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file (default: in-cluster config, then $KUBECONFIG / ~/.kube/config)",
    )
    p.add_argument(
        "--webhook-port",
        type=int,
        default=_env("WEBHOOK_PORT", "0"),
        help="serve the admission webhook on this port (0: no webhook)",
    )
    p.add_argument(
        "--webhook-addr",
        default=_env("WEBHOOK_ADDR", "0.0.0.0"),
        help="address the webhook listens on",
    )
    p.add_argument(
        "--webhook-host",
        default=_env("WEBHOOK_HOST", "127.0.0.1"),
        help="host name or IP in the webhook's serving certificate",
    )
    p.add_argument(
        "--webhook-processes",
        type=int,
        default=_env("WEBHOOK_PROCESSES", "1"),
        help="processes of its own that serve the webhook, on one socket (0: served by the "
        "operator's process, beside the reconcile)",
    )
    p.add_argument(
        "--cert-dir",
        type=Path,
        default=Path(_env("CERT_DIR", ".tftj-certs")),
        help="directory with ca.crt, tls.crt, tls.key (a mounted kubernetes.io/tls "
        "Secret); generated for --webhook-host when missing",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=_env("METRICS_PORT", "0"),
        help="serve the operator's Prometheus metrics on this port (0: off)",
    )
    p.add_argument("--metrics-addr", default=_env("METRICS_ADDR", "0.0.0.0"))
    p.add_argument(
        "--liveness",
        default=_env("LIVENESS", ""),
        help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    p.add_argument(
        "--log-format", choices=("plain", "full", "json"), default=_env("LOG_FORMAT", "plain")
    )
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument(
        "--workers",
        type=int,
        default=_env("WORKERS", "16"),
        help="jobs reconciled in parallel (each mostly waits on the apiserver)",
    )
    p.add_argument(
        "--resync-seconds",
        type=float,
        default=_env("RESYNC_SECONDS", "30"),
        help="look at every job at least this often",
    )
    p.add_argument(
        "--progress-seconds",
        type=float,
        default=_env("PROGRESS_SECONDS", "10"),
        help="how often a running job's progress is read from its chief",
    )
    p.add_argument(
        "--api-timeout-seconds",
        type=float,
        default=float(_env("API_TIMEOUT_SECONDS", "30")),
        help="give up on one apiserver request after this long and retry it (a silently "
        "dropped connection would otherwise block a worker forever)",
    )
    p.add_argument(
        "--watch-timeout-seconds",
        type=int,  # the apiserver's timeoutSeconds is an integer
        default=int(_env("WATCH_TIMEOUT_SECONDS", "300")),
        help="ask the apiserver to end each watch after this long; a watch silent for 10%% "
        "longer is dropped and re-established",
    )
    p.add_argument("--no-progress", action="store_true", help="never scrape the chief's /metrics")
    p.add_argument(
        "--scrape-allowed-cidrs",
        default=_env("SCRAPE_ALLOWED_CIDRS", ""),
        help="comma-separated networks the operator may scrape (default: any)",
    )
    election = p.add_argument_group(
        "leader election",
        "Run several replicas: every one serves the webhook, only the holder of a "
        "coordination.k8s.io Lease reconciles (docs/operations.md).",
    )
    election.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=_env("LEADER_ELECT", "false").lower() in ("1", "true", "yes"),
        help="reconcile only while holding the Lease (default: off, one replica)",
    )
    election.add_argument(
        "--leader-election-namespace",
        default=_env("LEADER_ELECTION_NAMESPACE", os.environ.get("POD_NAMESPACE") or "tftj-system"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else tftj-system)",
    )
    election.add_argument(
        "--leader-election-name",
        default=_env("LEADER_ELECTION_NAME", "tftj-operator"),
        help="name of the Lease",
    )
    election.add_argument(
        "--leader-election-id",
        default=_env("LEADER_ELECTION_ID", os.environ.get("POD_NAME") or ""),
        help="this replica's identity in the Lease (default: $POD_NAME, else host_random)",
    )
    election.add_argument(
        "--lease-duration-seconds",
        type=int,
        default=int(_env("LEASE_DURATION_SECONDS", "15")),
        help="how long followers wait after the leader's last renewal before taking over",
    )
    election.add_argument(
        "--renew-deadline-seconds",
        type=float,
        default=float(_env("RENEW_DEADLINE_SECONDS", "10")),
        help="the leader exits when it has not renewed for this long (< the lease duration)",
    )
    election.add_argument(
        "--retry-period-seconds",
        type=float,
        default=float(_env("RETRY_PERIOD_SECONDS", "2")),
        help="how often the leader renews and followers try to acquire",
    )
    p.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"tftj operator: {message}", file=sys.stderr)
    return 2


def _exit_on_lost_lease() -> None:
    """A deposed leader exits at once (the Deployment restarts it as a follower), as client-go's
    controllers do. Stopping the workers in place would not be enough: a reconcile thread in
    the middle of an apiserver request cannot be cancelled, and the successor may already be
    writing. Exiting also drops a cache that may have fallen behind."""
    logging.getLogger("tftj.operator").error("exiting: no longer the leader")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


# glibc's mallopt parameter for the number of malloc arenas (malloc.h).
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def _limit_malloc_arenas() -> None:
    """At most MALLOC_ARENAS malloc arenas, as MALLOC_ARENA_MAX=2 would (unless that variable
    is set: then glibc obeys it). glibc gives each busy thread an arena of its own, up to 8 per
    core; the reconcile threads, informers and Event posters then keep freed memory in
    separate arenas. Measured at 1,000 jobs x 4 workers live: 162 MiB vs 172 MiB (the GIL
    serialises the threads anyway, so they gain nothing from their own arenas)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:  # not glibc (musl, macOS): nothing to tune
        return
    mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def _exit_on_lost_webhook(code: int) -> None:
    """A webhook process ended under a running operator: exit too, so that the pod restarts
    (as with a lost lease) instead of running on with fewer webhook processes than asked."""
    logging.getLogger("tftj.operator").error("exiting: an admission webhook process ended")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def run(args: argparse.Namespace) -> int:
    # First, before any thread starts (kopf's, the informers', the reconcile pool).
    _limit_malloc_arenas()
    if args.kubeconfig:
        if not Path(args.kubeconfig).is_file():
            return _fail(f"--kubeconfig: no such file: {args.kubeconfig}")
        # Before importing kubernetes: it reads $KUBECONFIG once, at import (kopf logs in
        # through it).
        os.environ["KUBECONFIG"] = str(Path(args.kubeconfig).resolve())
    if args.webhook_processes < 0:
        return _fail(f"--webhook-processes: must be 0 or more, got {args.webhook_processes}")
    if not args.webhook_port:
        return _operate(args, None)

    from tftj.operator.certs import load_or_generate
    from tftj.operator.webhook import WebhookServer, tls_context
    from tftj.operator.webhookprocesses import WebhookProcessError, WebhookProcesses

    try:
        certs = load_or_generate(args.cert_dir, [args.webhook_host])
    except OSError as exc:
        return _fail(f"--cert-dir {args.cert_dir}: cannot write webhook certificates: {exc}")
    try:
        tls_context(certs)  # a bad pair fails here, in the operator, with the reason
    except (OSError, ssl.SSLError) as exc:
        return _fail(f"--cert-dir {args.cert_dir}: cannot load the webhook certificate: {exc}")
    if not args.webhook_processes:
        return _operate(args, WebhookServer(certs, addr=args.webhook_addr, port=args.webhook_port))
    # Forked now: before kopf and the kubernetes client are imported (the children need
    # neither) and before any thread exists (tftj.operator.webhookprocesses).
    processes = WebhookProcesses(
        certs,
        addr=args.webhook_addr,
        port=args.webhook_port,
        processes=args.webhook_processes,
        on_exit=_exit_on_lost_webhook,
        json_logs=args.log_format == "json",
    )
    try:
        processes.start()
    except OSError as exc:
        return _fail(f"--webhook-port {args.webhook_port}: cannot listen: {exc}")
    except WebhookProcessError as exc:
        return _fail(str(exc))
    try:
        return _operate(args, None)
    finally:
        processes.stop()


def _operate(args: argparse.Namespace, webhook: WebhookServer | None) -> int:
    """The operator itself: kopf, the controller and, if `webhook`, the webhook beside them."""
    import kopf
    from kubernetes import client, config
    from prometheus_client import start_http_server

    from tftj.operator.controller import Controller
    from tftj.operator.election import LeaderElector, LeaseStore
    from tftj.operator.handlers import build_registry, configure_settings
    from tftj.operator.informer import worker_informers
    from tftj.operator.kube import Kube, TimeoutApiClient
    from tftj.operator.reconcile import Timing

    election = ElectionConfig(
        identity=args.leader_election_id or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}",
        lease_duration_seconds=args.lease_duration_seconds,
        renew_deadline_seconds=args.renew_deadline_seconds,
        retry_period_seconds=args.retry_period_seconds,
    )
    if args.leader_elect and election.errors():
        return _fail("; ".join(election.errors()))

    try:
        allowed = [
            ipaddress.ip_network(c.strip())
            for c in args.scrape_allowed_cidrs.split(",")
            if c.strip()
        ]
    except ValueError as exc:
        return _fail(f"--scrape-allowed-cidrs: {exc}")

    try:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as exc:
        return _fail(f"cannot load a Kubernetes configuration: {exc}")
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = max(args.workers * 2, 8)
    api = TimeoutApiClient(configuration, timeout=args.api_timeout_seconds)

    kopf.configure(
        verbose=args.verbose,
        log_format={
            "plain": kopf.LogFormat.PLAIN,
            "full": kopf.LogFormat.FULL,
            "json": kopf.LogFormat.JSON,
        }[args.log_format],
        log_prefix=False,
    )
    logging.getLogger("tftj").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:
        # kopf logs every handled watch event at INFO; at hundreds of pods that drowns ours.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    timing = Timing(
        resync_seconds=args.resync_seconds,
        progress_seconds=args.progress_seconds,
        waiting_seconds=min(2.0, args.resync_seconds),
    )
    controller = Controller(
        kube=Kube(api, scrape_allowed=allowed),
        timing=timing,
        workers=args.workers,
        progress=not args.no_progress,
    )

    elector = None
    if args.leader_elect:
        elector = LeaderElector(
            LeaseStore(api, args.leader_election_namespace, args.leader_election_name),
            election,
            on_started=controller.start,
            on_lost=_exit_on_lost_lease,
        )
    namespaces = args.namespace or ()
    informers = worker_informers(
        api,
        namespaces,
        watch_timeout_seconds=args.watch_timeout_seconds,
        connect_timeout=args.api_timeout_seconds,
    )
    registry = build_registry(controller, elector, informers)
    settings = kopf.OperatorSettings()
    configure_settings(
        settings,
        watch_timeout_seconds=args.watch_timeout_seconds,
        api_timeout_seconds=args.api_timeout_seconds,
    )

    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_addr)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with contextlib.AsyncExitStack() as stack:
            if webhook is not None:
                await stack.enter_async_context(webhook)
            await kopf.operator(
                registry=registry,
                settings=settings,
                standalone=True,
                clusterwide=not namespaces,
                namespaces=namespaces,
                liveness_endpoint=args.liveness or None,
                stop_flag=stop,
            )

    asyncio.run(main())
    return 0
