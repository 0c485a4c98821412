"""What the child builders put into the cluster for a given spec."""

from __future__ import annotations

from typing import Any

from tftj.api.models import TFTrainingJobSpec
from tftj.api.resolve import resolve
from tftj.operator.children import attempt_job, static_children

JOB = {
    "apiVersion": "tftj.dev/v1alpha1",
    "kind": "TFTrainingJob",
    "metadata": {"name": "vision", "namespace": "ml", "uid": "u-9"},
}


def build(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    parsed = TFTrainingJobSpec.model_validate({"data": {"format": "synthetic"}, **spec})
    resolved = resolve(parsed, name="vision", namespace="ml")
    return static_children(JOB, resolved), attempt_job(JOB, resolved, 2)


def test_storage_claim_tensorboard_and_mounts() -> None:
    children, job = build(
        {
            "storage": {"size": "10Gi", "storageClassName": "fast"},
            "tensorboard": {"enabled": True},
            "workers": {"replicas": 2, "gpusPerWorker": 0},
        }
    )
    kinds = [(c["kind"], c["metadata"]["name"]) for c in children]
    assert kinds == [
        ("ConfigMap", "vision-params"),
        ("Service", "vision-workers"),
        ("PersistentVolumeClaim", "vision-storage"),
        ("Deployment", "vision-tensorboard"),
        ("Service", "vision-tensorboard"),
    ]
    pvc = children[2]
    assert (
        pvc["spec"]["accessModes"] == ["ReadWriteMany"]
        and pvc["spec"]["storageClassName"] == "fast"
    )
    tb = children[3]["spec"]["template"]["spec"]["containers"][0]
    assert tb["command"][:3] == ["tensorboard", "--logdir", "/storage/logs"]
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "tftj-storage")
    assert volume["persistentVolumeClaim"]["claimName"] == "vision-storage"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "tftj-storage")
    assert mount == {"name": "tftj-storage", "mountPath": "/storage", "subPath": "vision"}


def test_no_storage_means_an_empty_dir_and_no_tensorboard() -> None:
    children, job = build({"tensorboard": {"enabled": True}, "workers": {"gpusPerWorker": 0}})
    assert [c["kind"] for c in children] == ["ConfigMap", "Service"]
    volume = next(
        v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "tftj-storage"
    )
    assert volume == {"name": "tftj-storage", "emptyDir": {}}


def test_workers_and_tensorboard_have_a_read_only_root_and_a_scratch_dir() -> None:
    children, job = build(
        {
            "tensorboard": {"enabled": True},
            "storage": {"size": "1Gi"},
            "workers": {"gpusPerWorker": 0},
        }
    )
    tensorboard = children[3]["spec"]["template"]["spec"]
    for pod in (job["spec"]["template"]["spec"], tensorboard):
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "tftj-scratch", "mountPath": "/tmp"} in container["volumeMounts"]
        assert {"name": "tftj-scratch", "emptyDir": {}} in pod["volumes"]


def test_pod_template_overrides_and_scheduling() -> None:
    _, job = build(
        {
            "workers": {
                "replicas": 1,
                "gpusPerWorker": 2,
                "podTemplate": {
                    "labels": {"team": "a"},
                    "annotations": {"note": "x"},
                    "nodeSelector": {"gpu": "a100"},
                    "tolerations": [
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "env": [
                        {"name": "EXTRA", "value": "1"},
                        {"name": "TFTJ_ATTEMPT", "value": "99"},
                    ],
                    "serviceAccountName": "trainer",
                },
            },
            "scheduling": {"priorityClassName": "high", "schedulerName": "volcano"},
        }
    )
    template = job["spec"]["template"]
    pod = template["spec"]
    assert template["metadata"]["labels"]["team"] == "a"
    assert template["metadata"]["labels"]["tftj.dev/attempt"] == "2"
    assert template["metadata"]["annotations"] == {"note": "x"}
    assert pod["nodeSelector"] == {"gpu": "a100"} and pod["serviceAccountName"] == "trainer"
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert (pod["priorityClassName"], pod["schedulerName"]) == ("high", "volcano")
    env = pod["containers"][0]["env"]
    assert {"name": "EXTRA", "value": "1"} in env
    assert [e["value"] for e in env if e["name"] == "TFTJ_ATTEMPT"] == ["2"]  # never shadowed
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "2"
    assert pod["containers"][0]["command"] == [
        "python",
        "-m",
        "tftj_trainer",
        "--params",
        "/etc/tftj/params.yaml",
    ]
    assert pod["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_params_yaml_is_the_safe_dump_of_the_resolved_parameters_every_time() -> None:
    import yaml
    from tftj.api.resolve import resolved_to_dict
    from tftj.operator.children import params_yaml

    for replicas, name in ((2, "a"), (4, "a"), (2, "b"), (2, "a")):
        spec = TFTrainingJobSpec.model_validate(
            {"data": {"format": "synthetic"}, "workers": {"replicas": replicas}}
        )
        resolved = resolve(spec, name=name, namespace="ml")
        expected = yaml.safe_dump(resolved_to_dict(resolved), sort_keys=False)
        assert params_yaml(resolved) == expected  # remembered or not
