"""tftj.operator.conditions: phase conditions and their transition times."""

from __future__ import annotations

from tftj.operator import conditions


def test_phase_conditions_flip_and_keep_transition_times() -> None:
    c = conditions.set_phase([], "Pending", "WorkersStarting", "0/2", now="t1", generation=1)
    c = conditions.set_phase(c, "Running", "AllWorkersRunning", "2/2", now="t2", generation=1)
    c = conditions.set_phase(c, "Running", "AllWorkersRunning", "2/2 again", now="t3", generation=1)
    pending, running = conditions.find(c, "Pending"), conditions.find(c, "Running")
    assert pending and pending["status"] == "False" and pending["lastTransitionTime"] == "t2"
    assert running and running["status"] == "True" and running["lastTransitionTime"] == "t2"
    assert running["message"] == "2/2 again"
