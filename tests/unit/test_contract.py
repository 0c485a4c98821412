"""The exit-code table shared by the trainer, the operator and `tftj run`."""

from __future__ import annotations

import signal

import pytest
from tftj.api.contract import (
    CRASH_SIGNALS,
    PERMANENT_EXIT_CODES,
    ExitCode,
    exit_code_meaning,
    exit_signal,
    failure_kind,
    is_retried,
)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (ExitCode.UNEXPECTED, "Retryable"),
        (ExitCode.USAGE, "Permanent"),
        (ExitCode.BAD_PARAMETERS, "Permanent"),
        (ExitCode.BAD_DATA, "Permanent"),
        (ExitCode.BAD_MODEL, "Permanent"),
        (ExitCode.PEER_LOST, "Retryable"),
        (ExitCode.PREEMPTED, "Retryable"),
        (128 + signal.SIGABRT, "Crashed"),  # 134: abort() in native code (oneDNN, CUDA)
        (128 + signal.SIGSEGV, "Crashed"),  # 139
        (128 + signal.SIGBUS, "Crashed"),
        (128 + signal.SIGFPE, "Crashed"),
        (128 + signal.SIGILL, "Crashed"),
        (128 + signal.SIGKILL, "Retryable"),  # 137: OOM kill, eviction, deletion
        (128 + signal.SIGTERM, "Retryable"),  # 143
        (128, "Retryable"),
        (255, "Retryable"),
        (42, "Retryable"),
    ],
)
def test_failure_kind(code: int, kind: str) -> None:
    assert failure_kind(code) == kind
    assert is_retried(failure_kind(code)) is (kind == "Retryable")


def test_only_signals_a_process_raises_on_itself_are_crashes() -> None:
    assert {s.name for s in CRASH_SIGNALS} == {"SIGABRT", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL"}
    assert not {s + 128 for s in CRASH_SIGNALS} & PERMANENT_EXIT_CODES


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (134, "SIGABRT: the trainer crashed in native code"),
        (139, "SIGSEGV: the trainer crashed in native code"),
        (137, "SIGKILL: killed (OOM-killed, evicted or deleted)"),
        (143, "SIGTERM: killed by a signal"),
        (4, "BAD_DATA"),
        (42, "unknown"),
        (128 + 99, "signal 99"),
    ],
)
def test_exit_code_meaning_names_the_signal(code: int, says: str) -> None:
    assert exit_code_meaning(code) == says


def test_exit_signal() -> None:
    assert exit_signal(134) == signal.SIGABRT
    assert exit_signal(128) is None and exit_signal(3) is None and exit_signal(128 + 99) is None
