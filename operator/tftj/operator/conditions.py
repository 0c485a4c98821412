"""status.conditions of a TFTrainingJob: one condition type per phase plus `Created`.

The condition of the current phase is True and carries the reason and message; the other phase
conditions already present turn False. So `kubectl wait --for=condition=Succeeded` works and
`kubectl describe` shows why a job is where it is. lastTransitionTime changes only when a
condition's status changes, as the Kubernetes API conventions ask.
"""

from __future__ import annotations

from typing import Any

Condition = dict[str, Any]

CREATED = "Created"
PHASES = ("Pending", "Running", "Restarting", "Suspended", "Succeeded", "Failed")
TERMINAL_PHASES = ("Succeeded", "Failed")
# kstatus' "abnormal-true" condition (what Flux and kpt read): Stalled is True while the job
# cannot get where its spec asks without a change (Failed, or a spec the operator refuses) and
# absent or False otherwise. Like a started batch/v1 Job, any other job whose observedGeneration
# is current is "Current" for kstatus; no Reconciling condition is needed for that.
STALLED = "Stalled"
INVALID_SPEC = "InvalidSpec"


def find(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """A new list with condition `type_` set; its position is kept, new ones are appended."""
    old = find(conditions, type_)
    transition = (
        now if old is None or old.get("status") != status else old.get("lastTransitionTime", now)
    )
    new: Condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if generation is not None:
        new["observedGeneration"] = generation
    if old is None:
        return [*conditions, new]
    return [new if c is old else c for c in conditions]


def set_phase(
    conditions: list[Condition],
    phase: str,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """The phase's condition True; every other phase condition already present False."""
    result = set_condition(
        conditions, phase, "True", reason, message, now=now, generation=generation
    )
    stalled = phase == "Failed" or reason == INVALID_SPEC
    for other in (*PHASES, STALLED):
        existing = find(result, other)
        if other == STALLED and stalled:
            result = set_condition(
                result, other, "True", reason, message, now=now, generation=generation
            )
            continue
        if other == phase or existing is None or existing.get("status") == "False":
            continue
        result = set_condition(
            result,
            other,
            "False",
            reason,
            f"The job is {phase}.",
            now=now,
            generation=generation,
        )
    return result
