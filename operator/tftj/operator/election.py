"""The leader election's edge: reads and writes the Lease, runs the acquire and renew loops on
the event loop, and tells the operator when it leads (tftj.operator.leaderlease decides).

Only the leader runs the reconcile workers; every replica keeps serving the webhook and keeps
its watch-fed cache warm, so a new leader starts reconciling at once. A leader that cannot
renew within the renew deadline, or finds another holder in the Lease, calls `on_lost`
(`tftj operator` exits: see there why).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from tftj.operator import metrics
from tftj.operator.leaderlease import (
    JITTER_FACTOR,
    ElectionConfig,
    Observed,
    Record,
    Step,
    decide,
    lost,
    next_record,
    observe,
    released,
)

log = logging.getLogger("tftj.operator")


class LeaseStore:
    """One Lease object, read and written with its resourceVersion as precondition."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        # Untyped on purpose: with _preload_content=False the calls return the raw response
        # (plain JSON, no model round trip of the MicroTime fields), not the V1Lease stubbed.
        self.api: Any = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name

    def read(self, timeout: float) -> tuple[Record | None, str | None]:
        try:
            raw = self.api.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False, _request_timeout=timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None, None
            raise
        body = json.loads(raw.data)
        return Record.from_spec(body.get("spec")), body["metadata"]["resourceVersion"]

    def write(
        self, record: Record, resource_version: str | None, create: bool, timeout: float
    ) -> str:
        """Create or replace the Lease; its new resourceVersion. A lost race is a 409."""
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.to_spec(),
        }
        if create:
            raw = self.api.create_namespaced_lease(
                self.namespace, body, _preload_content=False, _request_timeout=timeout
            )
        else:
            body["metadata"]["resourceVersion"] = resource_version
            raw = self.api.replace_namespaced_lease(
                self.name, self.namespace, body, _preload_content=False, _request_timeout=timeout
            )
        return str(json.loads(raw.data)["metadata"]["resourceVersion"])


class LeaderElector:
    def __init__(
        self,
        store: LeaseStore,
        config: ElectionConfig,
        on_started: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.store = store
        self.config = config
        self.on_started = on_started
        self.on_lost = on_lost
        self.observed: Observed | None = None
        self.leading = False

    async def _try(self, timeout: float) -> bool:
        """One acquire-or-renew attempt (client-go's tryAcquireOrRenew): whether we hold it."""
        loop = asyncio.get_running_loop()
        try:
            record, rv = await loop.run_in_executor(None, self.store.read, timeout)
            self.observed = observe(self.observed, record, rv, time.monotonic())
            step = decide(self.observed, self.config.identity, time.monotonic())
            if step is Step.WAIT:
                return False
            new = next_record(step, record, self.config, datetime.now(UTC))
            new_rv = await loop.run_in_executor(
                None, self.store.write, new, rv, step is Step.CREATE, timeout
            )
        except ApiException as exc:
            if exc.status != 409:  # 409: another replica wrote first; read again next time
                log.warning(
                    "leader election: lease %s: %s %s", self.store.name, exc.status, exc.reason
                )
            return False
        except (HTTPError, OSError, ValueError, KeyError) as exc:
            log.warning("leader election: lease %s: %s", self.store.name, exc)
            return False
        self.observed = Observed(new, new_rv, time.monotonic())
        return True

    def _retry_delay(self) -> float:
        return self.config.retry_period_seconds * (1 + random.random() * (JITTER_FACTOR - 1))

    async def run(self) -> None:
        """Acquire, then renew until the lease is lost (on_lost) or the task is cancelled."""
        config = self.config
        log.info(
            "leader election: %s waiting for lease %s/%s",
            config.identity,
            self.store.namespace,
            self.store.name,
        )
        while not await self._try(config.renew_deadline_seconds):
            await asyncio.sleep(self._retry_delay())
        last_renewed = time.monotonic()
        self.leading = True
        metrics.LEADER_TRANSITIONS.inc()
        log.info("leader election: %s is the leader", config.identity)
        self.on_started()
        while True:
            await asyncio.sleep(config.retry_period_seconds)
            # An attempt may take what is left of the renew deadline (a loaded apiserver is
            # slow, not gone), never more: a hung request must not keep a deposed leader
            # writing.
            # The client's own retries could stretch one call past it, hence the outer bound.
            left = config.renew_deadline_seconds - (time.monotonic() - last_renewed)
            if left > 0:
                try:
                    renewed = await asyncio.wait_for(self._try(left), timeout=left)
                except TimeoutError:
                    renewed = False
                if renewed:
                    last_renewed = time.monotonic()
                    continue
            if lost(last_renewed, time.monotonic(), config) or not self._still_ours():
                self.leading = False
                log.error(
                    "leader election: %s lost lease %s/%s",
                    config.identity,
                    self.store.namespace,
                    self.store.name,
                )
                self.on_lost()
                return

    def _still_ours(self) -> bool:
        """False once the Lease names another holder (someone took it: stop at once)."""
        record = self.observed.record if self.observed else None
        return record is None or record.holder in ("", self.config.identity)

    async def release(self) -> None:
        """Give the lease up (after the workers stopped), so a follower need not wait it out."""
        if not self.leading or self.observed is None or self.observed.record is None:
            return
        self.leading = False
        record = released(self.observed.record, datetime.now(UTC))
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                None,
                self.store.write,
                record,
                self.observed.resource_version,
                False,
                self.config.retry_period_seconds,
            )
            log.info("leader election: %s released lease %s", self.config.identity, self.store.name)
        except (ApiException, HTTPError, OSError) as exc:
            # It expires on its own; the successor just waits the lease duration.
            log.warning("leader election: could not release lease %s: %s", self.store.name, exc)
