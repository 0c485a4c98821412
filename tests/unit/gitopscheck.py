"""How GitOps tools judge a TFTrainingJob: Argo CD's health (our Lua, run by a real Lua 5.1
runtime as Argo CD's gopher-lua is) and kstatus (the rules Flux and kpt apply to custom
resources). Shared by the unit test (checked-in fixtures) and the cluster test that captures
those fixtures from the operator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51

REPO = Path(__file__).resolve().parents[2]
HEALTH_LUA = REPO / "charts" / "tftj" / "files" / "argocd-health.lua"
FIXTURES = Path(__file__).resolve().parent / "gitops-fixtures"

# fixture name -> (Argo CD health status, kstatus status)
EXPECTED: dict[str, tuple[str, str]] = {
    "not-observed": ("Progressing", "Current"),  # kstatus cannot tell: see docs/gitops.md
    "pending": ("Progressing", "Current"),  # started, as kstatus says of a batch/v1 Job
    "running": ("Progressing", "Current"),
    "restarting": ("Progressing", "Current"),
    "suspended": ("Suspended", "Current"),
    "succeeded": ("Healthy", "Current"),
    "failed": ("Degraded", "Failed"),
    "invalid-spec": ("Degraded", "Failed"),
}


def argocd_health(obj: dict[str, Any]) -> dict[str, str]:
    """Run charts/tftj/files/argocd-health.lua as Argo CD does: `obj` global in, table out."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(HEALTH_LUA.read_text())
    return {str(k): str(v) for k, v in dict(result).items()}


def kstatus(obj: dict[str, Any]) -> tuple[str, str]:
    """kstatus' Compute for a kind it has no built-in rules for (sigs.k8s.io/cli-utils
    pkg/kstatus/status: checkGenericProperties, then "Current" when nothing decided)."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating", "Resource scheduled for deletion"
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return "InProgress", f"generation is {generation}, but latest observed is {observed}"
    for c in status.get("conditions") or []:
        if c.get("type") == "Reconciling" and c.get("status") == "True":
            return "InProgress", str(c.get("message", ""))
        if c.get("type") == "Stalled" and c.get("status") == "True":
            return "Failed", str(c.get("message", ""))
    return "Current", "Resource is current"


def load_fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


def as_fixture(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as captured, without what only adds noise (managedFields)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}
