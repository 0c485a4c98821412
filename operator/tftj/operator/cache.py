"""The operator's watch-fed local cache: the latest body of every TFTrainingJob and of every
worker Job and pod it owns (an informer's store, fed by the kopf event handlers).

Reconciles read from here instead of the apiserver. What a cache can get wrong is only ever
*older* state or a missing/extra object, never invented state; the controller deals with it:

- the job itself: a stale body makes the status write fail on its resourceVersion
  precondition (Conflict), and the next reconcile reads the job from the apiserver; our own
  status writes are put back here at once, so our next reconcile never sees its own past;
- an object not seen yet (just after a restart, or a watch that lags): before creating a
  worker Job the controller re-reads the worker Jobs and pods from the apiserver, so
  "attempts never mix" and "restarting never duplicates" do not rest on the cache;
- an object whose DELETED event was lost: the informers (tftj.operator.informer) report what a
  re-list no longer finds as DELETED, and any apiserver listing of one job's workers prunes
  it as well (`prune`).

No kopf and no kubernetes client here: plain dicts, safe to use from the reconcile threads
while the event loop feeds it.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, TFTrainingJob name)

JOBS = "Job"
PODS = "Pod"


def _rv(obj: Obj) -> int | None:
    """resourceVersion as a number when it is one (etcd's are): opaque otherwise."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


def _newer(new: Obj, old: Obj | None) -> bool:
    if old is None:
        return True
    a, b = _rv(new), _rv(old)
    return a is None or b is None or a >= b


class Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[Key, Obj] = {}
        # kind -> owner key -> object name -> body
        self._owned: dict[str, dict[Key, dict[str, Obj]]] = {JOBS: {}, PODS: {}}

    def sizes(self) -> dict[str, int]:
        """How many objects of each kind the cache holds (tftj_operator_cache_objects)."""
        with self._lock:
            return {
                "TFTrainingJob": len(self._jobs),
                **{kind: sum(map(len, owners.values())) for kind, owners in self._owned.items()},
            }

    # ------------------------------------------------------------ TFTrainingJobs

    def put_job(self, obj: Obj) -> None:
        """Keep `obj` unless a newer version of it is already here (a late watch event after
        our own status write)."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        with self._lock:
            if _newer(obj, self._jobs.get(key)):
                self._jobs[key] = obj

    def refresh_job(self, obj: Obj) -> None:
        """Our own write's result: replaces a job already here, never brings back one whose
        DELETED event came in meanwhile."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        with self._lock:
            if key in self._jobs and _newer(obj, self._jobs[key]):
                self._jobs[key] = obj

    def job(self, key: Key) -> Obj | None:
        """A private copy of the latest body, or None when none was seen."""
        with self._lock:
            found = self._jobs.get(key)
        return None if found is None else copy.deepcopy(found)

    def job_keys(self) -> list[Key]:
        with self._lock:
            return list(self._jobs)

    def forget_job(self, key: Key) -> None:
        """The TFTrainingJob is gone: drop it (its children go with their own events)."""
        with self._lock:
            self._jobs.pop(key, None)

    # ------------------------------------------------------------ worker Jobs and pods

    def put(self, kind: str, owner: Key, obj: Obj) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        with self._lock:
            objects = self._owned[kind].setdefault(owner, {})
            if _newer(obj, objects.get(name)):
                objects[name] = obj

    def delete(self, kind: str, owner: Key, name: str) -> None:
        with self._lock:
            objects = self._owned[kind].get(owner)
            if objects is not None:
                objects.pop(name, None)
                if not objects:
                    del self._owned[kind][owner]

    def owned(self, kind: str, owner: Key) -> list[Obj]:
        """Private copies of every `kind` labelled as owned by `owner`, in name order."""
        with self._lock:
            found = list((self._owned[kind].get(owner) or {}).values())
        found.sort(key=lambda o: str(o["metadata"].get("name")))
        return copy.deepcopy(found)

    def prune(self, kind: str, owner: Key, listed: list[Obj], list_rv: str | None) -> int:
        """Drop what an apiserver listing (consistent as of `list_rv`) proves deleted: absent
        from it although last seen at an older resourceVersion. Returns how many went."""
        try:
            at = int(list_rv or "")
        except ValueError:
            return 0
        present = {str(o["metadata"].get("name")) for o in listed}
        gone = 0
        with self._lock:
            objects = self._owned[kind].get(owner) or {}
            for name in [n for n, o in objects.items() if n not in present]:
                seen = _rv(objects[name])
                if seen is not None and seen <= at:
                    del objects[name]
                    gone += 1
            if not objects:
                self._owned[kind].pop(owner, None)
        return gone
