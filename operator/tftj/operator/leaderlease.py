"""Leader election on a coordination.k8s.io/v1 Lease: the decisions, made as client-go's
leaderelection package makes them. Pure: no clock, no client; tftj.operator.election reads and
writes the Lease and calls these.

- A replica never trusts the holder's clock: a lease is expired when the record has not changed
  for `leaseDurationSeconds` of the *observer's* monotonic time since it first saw that record
  (client-go's observedTime), so clock skew between nodes cannot make two leaders.
- The leader gives up (stops writing) when it has not renewed for `renew_deadline`, which is
  shorter than the lease: it has stopped before any follower may take over.
- Every write carries the resourceVersion that was read (optimistic concurrency): of two
  replicas racing for an expired lease, the apiserver lets exactly one win.
- A clean shutdown writes an empty holder (release): the next replica takes over at its next
  retry instead of waiting out the lease.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any

# client-go's JitterFactor: the renew deadline must leave room for a jittered retry.
JITTER_FACTOR = 1.2


@dataclass(frozen=True)
class ElectionConfig:
    identity: str
    lease_duration_seconds: int = 15
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0

    def errors(self) -> list[str]:
        """What is wrong with these settings (client-go's NewLeaderElector checks), by flag."""
        out = []
        if not self.identity:
            out.append("--leader-election-id: must not be empty")
        if self.lease_duration_seconds < 1:
            out.append(f"--lease-duration-seconds: must be >= 1, got {self.lease_duration_seconds}")
        if self.retry_period_seconds <= 0:
            out.append(f"--retry-period-seconds: must be > 0, got {self.retry_period_seconds}")
        if self.renew_deadline_seconds >= self.lease_duration_seconds:
            out.append(
                f"--renew-deadline-seconds: must be < --lease-duration-seconds "
                f"({self.lease_duration_seconds}), got {self.renew_deadline_seconds}"
            )
        if self.renew_deadline_seconds <= JITTER_FACTOR * self.retry_period_seconds:
            out.append(
                f"--renew-deadline-seconds: must be > {JITTER_FACTOR} x --retry-period-seconds "
                f"({JITTER_FACTOR * self.retry_period_seconds:g}), "
                f"got {self.renew_deadline_seconds}"
            )
        return out


@dataclass(frozen=True)
class Record:
    """A Lease's spec: who holds it and since when."""

    holder: str  # "" = released, nobody holds it
    lease_duration_seconds: int
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> Record:
        spec = spec or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder or None,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


@dataclass(frozen=True)
class Observed:
    """The last Lease read: its record, its resourceVersion, and when (this replica's monotonic
    clock) that record was first seen."""

    record: Record | None  # None: there is no Lease yet
    resource_version: str | None
    since: float


def observe(
    previous: Observed | None, record: Record | None, resource_version: str | None, now: float
) -> Observed:
    """The observation after reading `record`: its age restarts only when it changed."""
    if previous is not None and previous.record == record:
        return replace(previous, resource_version=resource_version)
    return Observed(record, resource_version, now)


class Step(Enum):
    CREATE = "create"  # no Lease: create it, holding it
    TAKE = "take"  # released or expired: write ourselves as the holder
    RENEW = "renew"  # ours: move renewTime forward
    WAIT = "wait"  # someone else holds a valid lease


def decide(observed: Observed, identity: str, now: float) -> Step:
    record = observed.record
    if record is None:
        return Step.CREATE
    if record.holder == identity:
        return Step.RENEW
    if not record.holder or now - observed.since >= record.lease_duration_seconds:
        return Step.TAKE
    return Step.WAIT


def micro_time(when: datetime) -> str:
    """metav1.MicroTime as the apiserver writes it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_record(
    step: Step, current: Record | None, config: ElectionConfig, wall: datetime
) -> Record:
    """The record to write for `step` (never WAIT)."""
    stamp = micro_time(wall)
    if step is Step.RENEW and current is not None:
        return replace(
            current, renew_time=stamp, lease_duration_seconds=config.lease_duration_seconds
        )
    if step is Step.WAIT:
        raise ValueError("nothing to write while another replica holds the lease")
    # A new holder: CREATE starts the count at 0, a takeover adds one (leaseTransitions).
    transitions = 0 if current is None else current.transitions + 1
    return Record(config.identity, config.lease_duration_seconds, stamp, stamp, transitions)


def released(current: Record, wall: datetime) -> Record:
    """What a leader writes when it stops cleanly (client-go's ReleaseOnCancel)."""
    stamp = micro_time(wall)
    return replace(
        current, holder="", lease_duration_seconds=1, acquire_time=stamp, renew_time=stamp
    )


def lost(last_renewed: float, now: float, config: ElectionConfig) -> bool:
    """Whether a leader that last renewed at `last_renewed` must stop: past the renew deadline a
    follower may already be counting down to a takeover."""
    return now - last_renewed >= config.renew_deadline_seconds
