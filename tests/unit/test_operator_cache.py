"""The operator's watch-fed cache: newest body wins, deletions stick, listings prune ghosts."""

from __future__ import annotations

from tftj.operator.cache import JOBS, PODS, Cache

OWNER = ("ns", "mnist")


def obj(name: str, rv: str, **extra: object) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}, **extra}


def test_a_late_event_never_replaces_a_newer_body() -> None:
    cache = Cache()
    cache.put_job(obj("mnist", "10", status={"phase": "Pending"}))
    cache.refresh_job(obj("mnist", "12", status={"phase": "Running"}))  # our status write
    cache.put_job(obj("mnist", "11", status={"phase": "Pending"}))  # its watch event, late
    assert cache.job(OWNER)["status"] == {"phase": "Running"}  # type: ignore[index]


def test_our_write_does_not_bring_back_a_deleted_job() -> None:
    cache = Cache()
    cache.refresh_job(obj("mnist", "12"))
    assert cache.job(OWNER) is None
    cache.put_job(obj("mnist", "10"))
    cache.forget_job(OWNER)
    cache.refresh_job(obj("mnist", "12"))
    assert cache.job(OWNER) is None


def test_reads_are_private_copies() -> None:
    cache = Cache()
    cache.put(PODS, OWNER, obj("mnist-a0-0", "5", status={"phase": "Running"}))
    cache.owned(PODS, OWNER)[0]["status"]["phase"] = "Failed"
    assert cache.owned(PODS, OWNER)[0]["status"] == {"phase": "Running"}


def test_children_are_kept_per_owner_and_dropped_on_delete() -> None:
    cache = Cache()
    cache.put(JOBS, OWNER, obj("mnist-a0", "5"))
    cache.put(PODS, OWNER, obj("mnist-a0-1", "7"))
    cache.put(PODS, OWNER, obj("mnist-a0-0", "6"))
    cache.put(PODS, ("ns", "other"), obj("other-a0-0", "8"))
    assert [p["metadata"]["name"] for p in cache.owned(PODS, OWNER)] == [
        "mnist-a0-0",
        "mnist-a0-1",
    ]
    cache.delete(PODS, OWNER, "mnist-a0-0")
    assert [p["metadata"]["name"] for p in cache.owned(PODS, OWNER)] == ["mnist-a0-1"]
    assert [j["metadata"]["name"] for j in cache.owned(JOBS, OWNER)] == ["mnist-a0"]


def test_a_listing_prunes_only_what_it_proves_deleted() -> None:
    cache = Cache()
    cache.put(PODS, OWNER, obj("old", "5"))  # its DELETED event was lost
    cache.put(PODS, OWNER, obj("kept", "6"))
    cache.put(PODS, OWNER, obj("newer", "30"))  # created after the listing was taken
    gone = cache.prune(PODS, OWNER, [obj("kept", "6")], "20")
    assert gone == 1
    assert sorted(p["metadata"]["name"] for p in cache.owned(PODS, OWNER)) == ["kept", "newer"]
    assert cache.prune(PODS, OWNER, [], None) == 0  # no listing version: prove nothing


def test_sizes_count_what_is_held() -> None:
    cache = Cache()
    cache.put_job(obj("mnist", "1"))
    for i in range(3):
        cache.put(PODS, OWNER, obj(f"mnist-a0-{i}", "2"))
    cache.put(JOBS, OWNER, obj("mnist-a0", "2"))
    assert cache.sizes() == {"TFTrainingJob": 1, JOBS: 1, PODS: 3}
    cache.delete(PODS, OWNER, "mnist-a0-1")
    cache.forget_job(OWNER)
    assert cache.sizes() == {"TFTrainingJob": 0, JOBS: 1, PODS: 2}
