"""Leader election decisions (tftj.operator.leaderlease): who may write the Lease and when,
as client-go's leaderelection decides, on the observer's clock only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tftj.operator.leaderlease import (
    ElectionConfig,
    Record,
    Step,
    decide,
    lost,
    next_record,
    observe,
    released,
)

A = ElectionConfig("a", lease_duration_seconds=15, renew_deadline_seconds=10)
WALL = datetime(2026, 12, 1, 11, 0, 0, 123456, tzinfo=UTC)


def held_by(holder: str, duration: int = 15, renew: str = "t0") -> Record:
    return Record(holder, duration, "t0", renew, transitions=2)


def test_no_lease_is_created_holding_it() -> None:
    observed = observe(None, None, None, now=100.0)
    assert decide(observed, "a", now=100.0) is Step.CREATE
    record = next_record(Step.CREATE, None, A, WALL)
    assert record == Record(
        "a", 15, "2026-12-01T11:00:00.123456Z", "2026-12-01T11:00:00.123456Z", 0
    )
    assert record.to_spec()["holderIdentity"] == "a"


def test_a_valid_lease_of_another_holder_is_waited_out_on_the_observers_clock() -> None:
    observed = observe(None, held_by("b"), "7", now=100.0)
    assert decide(observed, "a", now=114.9) is Step.WAIT
    assert decide(observed, "a", now=115.0) is Step.TAKE


def test_a_renewal_restarts_the_wait_whatever_the_holders_clock_says() -> None:
    first = observe(None, held_by("b", renew="2020-01-01T00:00:00.000000Z"), "7", now=100.0)
    # The same record read again: its age keeps counting from when it was first seen.
    again = observe(first, held_by("b", renew="2020-01-01T00:00:00.000000Z"), "7", now=110.0)
    assert again.since == 100.0
    renewed = observe(again, held_by("b", renew="2020-01-01T00:00:02.000000Z"), "8", now=112.0)
    assert renewed.since == 112.0 and renewed.resource_version == "8"
    assert decide(renewed, "a", now=126.9) is Step.WAIT
    assert decide(renewed, "a", now=127.0) is Step.TAKE


def test_the_wait_is_the_holders_lease_duration_not_ours() -> None:
    observed = observe(None, held_by("b", duration=60), "7", now=0.0)
    assert decide(observed, "a", now=59.0) is Step.WAIT


def test_a_takeover_counts_a_transition_and_names_the_new_holder() -> None:
    record = next_record(Step.TAKE, held_by("b"), A, WALL)
    assert (record.holder, record.transitions) == ("a", 3)
    assert record.acquire_time == record.renew_time == "2026-12-01T11:00:00.123456Z"


def test_our_own_lease_is_renewed_keeping_its_acquire_time() -> None:
    observed = observe(None, held_by("a"), "7", now=0.0)
    assert decide(observed, "a", now=1000.0) is Step.RENEW
    record = next_record(Step.RENEW, held_by("a"), A, WALL)
    assert (record.holder, record.acquire_time, record.transitions) == ("a", "t0", 2)
    assert record.renew_time == "2026-12-01T11:00:00.123456Z"


def test_a_released_lease_is_taken_at_once() -> None:
    record = released(held_by("b"), WALL)
    assert record.holder == "" and record.lease_duration_seconds == 1
    assert record.to_spec()["holderIdentity"] is None
    assert record.transitions == 2
    observed = observe(None, Record.from_spec(record.to_spec()), "9", now=50.0)
    assert decide(observed, "a", now=50.0) is Step.TAKE


def test_nothing_is_written_while_waiting() -> None:
    with pytest.raises(ValueError, match="another replica holds"):
        next_record(Step.WAIT, held_by("b"), A, WALL)


def test_the_leader_stops_at_the_renew_deadline_before_any_follower_may_take_over() -> None:
    assert not lost(last_renewed=100.0, now=109.9, config=A)
    assert lost(last_renewed=100.0, now=110.0, config=A)
    assert A.renew_deadline_seconds < A.lease_duration_seconds


def test_a_lease_spec_round_trips() -> None:
    spec = {
        "holderIdentity": "pod-1",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-12-01T11:00:00.000000Z",
        "renewTime": "2026-12-01T11:00:02.000000Z",
        "leaseTransitions": 4,
    }
    assert Record.from_spec(spec).to_spec() == spec
    assert Record.from_spec(None) == Record("", 0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ElectionConfig(""), "--leader-election-id: must not be empty"),
        (
            ElectionConfig("a", lease_duration_seconds=10, renew_deadline_seconds=10),
            "--renew-deadline-seconds: must be < --lease-duration-seconds (10), got 10",
        ),
        (
            ElectionConfig("a", renew_deadline_seconds=2, retry_period_seconds=2),
            "--renew-deadline-seconds: must be > 1.2 x --retry-period-seconds (2.4), got 2",
        ),
        (ElectionConfig("a", retry_period_seconds=0), "--retry-period-seconds: must be > 0"),
        (ElectionConfig("a", lease_duration_seconds=0), "--lease-duration-seconds: must be >= 1"),
    ],
)
def test_bad_settings_are_refused_naming_the_flag(config: ElectionConfig, message: str) -> None:
    assert any(e.startswith(message) for e in config.errors()), config.errors()


def test_the_defaults_are_client_gos() -> None:
    config = ElectionConfig("a")
    assert (config.lease_duration_seconds, config.renew_deadline_seconds) == (15, 10.0)
    assert config.retry_period_seconds == 2.0 and config.errors() == []
