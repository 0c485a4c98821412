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
import ssl
import sys
from pathlib import Path
from typing import Any


def _env(name: str, default: str) -> str:
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
        default=int(_env("WEBHOOK_PORT", "0")),
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
        "--cert-dir",
        type=Path,
        default=Path(_env("CERT_DIR", ".tftj-certs")),
        help="directory with ca.crt, tls.crt, tls.key (a mounted kubernetes.io/tls "
        "Secret); generated for --webhook-host when missing",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("METRICS_PORT", "0")),
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
        default=int(_env("WORKERS", "16")),
        help="jobs reconciled in parallel (each mostly waits on the apiserver)",
    )
    p.add_argument(
        "--resync-seconds",
        type=float,
        default=float(_env("RESYNC_SECONDS", "30")),
        help="look at every job at least this often",
    )
    p.add_argument(
        "--progress-seconds",
        type=float,
        default=float(_env("PROGRESS_SECONDS", "10")),
        help="how often a running job's progress is read from its chief",
    )
    p.add_argument("--no-progress", action="store_true", help="never scrape the chief's /metrics")
    p.add_argument(
        "--scrape-allowed-cidrs",
        default=_env("SCRAPE_ALLOWED_CIDRS", ""),
        help="comma-separated networks the operator may scrape (default: any)",
    )
    p.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"tftj operator: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.kubeconfig:
        if not Path(args.kubeconfig).is_file():
            return _fail(f"--kubeconfig: no such file: {args.kubeconfig}")
        # Before importing kubernetes: it reads $KUBECONFIG once, at import (kopf logs in
        # through it).
        os.environ["KUBECONFIG"] = str(Path(args.kubeconfig).resolve())

    import kopf
    from kubernetes import client, config
    from prometheus_client import start_http_server

    from tftj.operator.certs import load_or_generate
    from tftj.operator.controller import Controller
    from tftj.operator.handlers import build_registry, configure_settings
    from tftj.operator.kube import Kube
    from tftj.operator.reconcile import Timing
    from tftj.operator.webhook import WebhookServer

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
    api = client.ApiClient(configuration)

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

    webhook: WebhookServer | None = None
    if args.webhook_port:
        try:
            certs = load_or_generate(args.cert_dir, [args.webhook_host])
        except OSError as exc:
            return _fail(f"--cert-dir {args.cert_dir}: cannot write webhook certificates: {exc}")
        try:
            webhook = WebhookServer(certs, addr=args.webhook_addr, port=args.webhook_port)
        except (OSError, ssl.SSLError) as exc:
            return _fail(f"--cert-dir {args.cert_dir}: cannot load the webhook certificate: {exc}")
    registry = build_registry(controller)
    settings = kopf.OperatorSettings()
    configure_settings(settings)

    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_addr)

    namespaces = args.namespace or ()

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
