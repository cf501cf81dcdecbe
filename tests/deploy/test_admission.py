"""The TrainJob admission policy (manifests/base/admission.yaml), checked offline (issue 24 item 11).

Three checks, each on the rendered manifests: the policy and its binding are wired to each env's
namespace (and Argo CD may deploy them); every field path its CEL expressions use exists in the
TrainJob v1alpha1 schema of the installed ``kubeflow-trainer-api`` (a misspelt field would make the
API server refuse the policy, or a ``has()`` quietly never match); and the expressions, evaluated by
a CEL interpreter (cel-python), admit what teacherlm's launcher submits and refuse what they must.
Only a real API server type-checks them against the installed CRD and enforces them
(docs/security.md, "What only a real cluster checks").
"""

from __future__ import annotations

import re
import typing

import pytest
import yaml

try:
    import deploy_helpers as dh
except ImportError:  # tests/ imported as a package
    from tests import deploy_helpers as dh

pytestmark = pytest.mark.timeout(120)

NAMESPACES = {"dev": "teacherlm-dev", "prod": "teacherlm"}
GROUP = "admissionregistration.k8s.io"
PLACEMENT = {"affinity", "nodeSelector", "tolerations", "schedulingGates"}  # what a runtime patch may set
# The CEL iteration variables and the list each one runs over (a path relative to the TrainJob).
ITERATED = {
    "p": ["spec", "runtimePatches"],
    "j": ["spec", "runtimePatches", "trainingRuntimeSpec", "template", "spec", "replicatedJobs"],
    "e": ["spec", "trainer", "env"],
}


def _objects(env: str) -> tuple[dict, dict]:
    docs = dh.render(env)[1]
    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    return policy, binding


def _expressions(policy: dict) -> list[str]:
    spec = policy["spec"]
    return [v["expression"] for v in spec.get("variables", [])] + [
        v["expression"] for v in spec["validations"]
    ]


# --- wiring ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", dh.ENVS)
def test_each_env_binds_its_own_policy_to_its_own_namespace(env):
    policy, binding = _objects(env)
    namespace = NAMESPACES[env]
    assert policy["apiVersion"] == binding["apiVersion"] == f"{GROUP}/v1"
    assert "namespace" not in policy["metadata"] and "namespace" not in binding["metadata"]  # cluster-scoped
    # Named after the namespace: dev's and prod's copies on one cluster are two objects.
    assert policy["metadata"]["name"] == binding["metadata"]["name"] == f"teacherlm-trainjobs.{namespace}"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace]}
    ]
    assert policy["spec"]["failurePolicy"] == "Fail"  # no policy, no TrainJob
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["apiGroups"] == ["trainer.kubeflow.org"] and rule["resources"] == ["trainjobs"]
    assert set(rule["operations"]) == {"CREATE", "UPDATE"}  # a patch added later is checked too
    assert all(v.get("message") for v in policy["spec"]["validations"])


def test_argocd_may_deploy_the_policy_in_prod():
    project = yaml.safe_load((dh.MANIFESTS / "argocd" / "apps" / "project-prod.yaml").read_text())
    allowed = {(k["group"], k["kind"]) for k in project["spec"]["clusterResourceWhitelist"]}
    for doc in dh.render("prod")[1]:
        if "namespace" not in doc["metadata"]:
            group = doc["apiVersion"].rpartition("/")[0]
            assert (group, doc["kind"]) in allowed, f"{doc['kind']}/{doc['metadata']['name']}"


# --- field paths against the TrainJob schema -------------------------------------------------------


def _model_field(model, name: str):
    for field_name, info in model.model_fields.items():
        if (info.alias or field_name) == name:
            return info.annotation
    return None


def _element(tp):
    """The model (or scalar, or dict) a field holds: Optional and List unwrapped."""
    while True:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Union:
            tp = next(a for a in args if a is not type(None))
        elif origin is list:
            tp = args[0]
        else:
            return tp


def resolve(path: list[str]) -> list[str]:
    """The segments of ``path`` (from the TrainJob's root) that the schema lacks; [] when all exist."""
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    model = TrainerV1alpha1TrainJob
    for depth, name in enumerate(path):
        if model is dict or typing.get_origin(model) is dict:
            return []  # a map: any key (labels, nodeSelector)
        if not hasattr(model, "model_fields"):
            return path[depth:]  # a scalar has no fields
        annotation = _model_field(model, name)
        if annotation is None:
            return path[depth:]
        model = _element(annotation)
    return []


def field_paths(expression: str) -> list[list[str]]:
    """Every field path in a CEL expression, from the TrainJob's root (method calls left out)."""
    found = []
    for match in re.finditer(r"\b(object|[pje])((?:\.[A-Za-z_]\w*)+)(\s*\()?", expression):
        segments = match[2].strip(".").split(".")
        if match[3]:  # x.startsWith(...), x.all(...): a method, not a field
            segments = segments[:-1]
        root = [] if match[1] == "object" else ITERATED[match[1]]
        found.append(root + segments)
    return found


@pytest.mark.parametrize("env", dh.ENVS)
def test_every_field_the_policy_reads_exists_in_the_trainjob_schema(env):
    policy, _ = _objects(env)
    compact = re.sub(r"\s+", "", "\n".join(_expressions(policy)))
    # The iteration variables run over the lists ITERATED says.
    for iterated in (
        "variables.patches.all(p,",
        "p.trainingRuntimeSpec.template.spec.replicatedJobs.all(j,",
        "object.spec.trainer.env.all(e,",
    ):
        assert iterated in compact, iterated
    assert "object.spec.runtimePatches:[]" in compact  # variables.patches
    paths = [p for expression in _expressions(policy) for p in field_paths(expression)]
    assert len(paths) > 40
    for path in [*paths, *ITERATED.values()]:
        assert not resolve(path), f"{'.'.join(path)}: no {'.'.join(resolve(path))} in TrainJob v1alpha1"


def test_the_path_check_catches_a_misspelt_field():
    assert resolve(["spec", "runtimePatches", "trainingRuntimeSpec", "template"]) == []
    assert resolve(["spec", "runtimePatch", "manager"]) == ["runtimePatch", "manager"]
    assert resolve(["spec", "trainer", "env", "valueFrom", "secretKeyRef", "nme"]) == ["nme"]
    assert field_paths("!has(object.spec.trainer) || object.spec.trainer.image.startsWith(x)") == [
        ["spec", "trainer"],
        ["spec", "trainer", "image"],
    ]


@pytest.mark.parametrize("env", dh.ENVS)
def test_runtime_patches_are_placement_only_for_every_field_the_api_has(env):
    """Every field a runtime patch may set in a pod spec is either placement or refused by name: a
    kubeflow-trainer-api release that adds a field fails here until the policy decides on it."""
    from kubeflow_trainer_api.models import TrainerV1alpha1PodSpecPatch

    policy, _ = _objects(env)
    text = "\n".join(_expressions(policy))
    refused = set(re.findall(r"!has\(j\.template\.spec\.template\.spec\.(\w+)\)", text))
    fields = {info.alias or name for name, info in TrainerV1alpha1PodSpecPatch.model_fields.items()}
    assert refused | PLACEMENT == fields and not refused & PLACEMENT
    assert {"containers", "initContainers", "volumes", "securityContext", "serviceAccountName"} <= refused


# --- the policy's logic, evaluated ----------------------------------------------------------------


def evaluate(policy: dict, trainjob: dict) -> list[str]:
    """The messages of the validations ``trainjob`` fails (``[]``: admitted)."""
    from vap import denials

    return denials(policy, trainjob)


def launcher_trainjob(namespace: str) -> dict:
    """The TrainJob a pipeline's training step submits (train/runner.py builds it so)."""
    from teacherlm_core.run_context import IMAGES
    from teacherlm_core.train.k8s import ClusterJob, SecretEnv, kueue_labels, render_trainjob

    secret_env = [
        SecretEnv(name=k, secret="teacherlm-pipelines-s3", key=k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    ]
    secret_env += [
        SecretEnv(name=k, secret="teacherlm-mlflow-auth", key=k)
        for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    ]
    job = ClusterJob(
        name="tlm-student-0123abcd-plain",
        namespace=namespace,
        image=IMAGES["train"],
        num_nodes=2,
        gpus_per_node=8,
        command=["teacherlm", "train", "student", "--config", "s3://teacherlm/r/plain.config.yaml"],
        env={
            "MLFLOW_TRACKING_URI": "http://teacherlm-mlflow:5000",
            "AWS_ENDPOINT_URL_S3": "http://teacherlm-minio:9000",
        },
        secret_env=secret_env,
        node_selector={"nvidia.com/gpu.present": "true"},
        labels={"teacherlm.io/kfp-run": "0123abcd"} | kueue_labels("teacherlm", "teacherlm-training"),
    )
    body = render_trainjob(job)
    # The API server defaults what the CRD defaults before admission: Trainer's webhook stamps each patch.
    for patch in body["spec"].get("runtimePatches", []):
        patch["time"] = "2026-12-06T20:00:00Z"
    return body


def _pod_patch(body: dict) -> dict:
    (patch,) = body["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    return job["template"]["spec"]["template"]


def _kueue_patch(body: dict) -> None:
    """What Kueue adds when it admits the job: its own patch, placement and labels only."""
    pod = {
        "metadata": {
            "labels": {"kueue.x-k8s.io/podset": "node"},
            "annotations": {"kueue.x-k8s.io/workload": "w"},
        },
        "spec": {
            "nodeSelector": {"cloud.example.com/flavor": "h100"},
            "schedulingGates": [{"name": "kueue.x-k8s.io/topology"}],
            "tolerations": [{"key": "reserved", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                        ]
                    }
                }
            },
        },
    }
    body["spec"]["runtimePatches"].append(
        {
            "manager": "kueue.x-k8s.io/manager",
            "trainingRuntimeSpec": {
                "template": {
                    "spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": pod}}}]}
                }
            },
        }
    )


def _set(path: str, value):
    def mutate(body):
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        node[last] = value

    return mutate


REFUSED = {
    # mutation of the launcher's TrainJob -> a phrase of the message that refuses it
    "another runtime": (_set("spec.runtimeRef.name", "torch-distributed"), "runs on the TrainingRuntime"),
    "a cluster runtime": (
        _set("spec.runtimeRef.kind", "ClusterTrainingRuntime"),
        "runs on the TrainingRuntime",
    ),
    "no runtime kind": (lambda b: b["spec"]["runtimeRef"].pop("kind"), "runs on the TrainingRuntime"),
    "an initializer": (_set("spec.initializer", {"model": {"storageUri": "hf://x/y"}}), "no initializer"),
    "multikueue": (_set("spec.managedBy", "kueue.x-k8s.io/multikueue"), "managedBy"),
    "another image": (_set("spec.trainer.image", "busybox:1.36"), "spec.trainer.image"),
    "a look-alike image": (
        _set("spec.trainer.image", "ghcr.io/teacherlm/teacherlm-train-evil:1"),
        "spec.trainer.image",
    ),
    "a shell": (_set("spec.trainer.command", ["sh", "-c", "env"]), "spec.trainer.command"),
    "teacherlm alone": (_set("spec.trainer.command", ["teacherlm"]), "spec.trainer.command"),
    "MinIO's root keys": (
        lambda b: b["spec"]["trainer"]["env"].append(
            {
                "name": "ROOT",
                "valueFrom": {"secretKeyRef": {"name": "teacherlm-minio", "key": "AWS_SECRET_ACCESS_KEY"}},
            }
        ),
        "spec.trainer.env",
    ),
    "the key off": (
        lambda b: b["spec"]["trainer"]["env"].append(
            {"name": "TEACHERLM_CHECKPOINT_KEY_REQUIRED", "value": "false"}
        ),
        "spec.trainer.env",
    ),
    "volumes": (
        lambda b: _pod_patch(b)["spec"].update(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
        "only place pods",
    ),
    "a security context": (
        lambda b: _pod_patch(b)["spec"].update(securityContext={"runAsUser": 0}),
        "only place pods",
    ),
    "a service account": (
        lambda b: _pod_patch(b)["spec"].update(serviceAccountName="default-editor"),
        "only place pods",
    ),
    "a container patch": (
        lambda b: _pod_patch(b)["spec"].update(
            containers=[{"name": "node", "securityContext": {"privileged": True}}]
        ),
        "only place pods",
    ),
    "an init container": (
        lambda b: _pod_patch(b)["spec"].update(initContainers=[{"name": "x"}]),
        "only place pods",
    ),
    "image pull secrets": (
        lambda b: _pod_patch(b)["spec"].update(imagePullSecrets=[{"name": "r"}]),
        "only place pods",
    ),
    "out of its network policy": (
        lambda b: (
            _pod_patch(b).setdefault("metadata", {}).update(labels={"teacherlm.io/train-node": "false"})
        ),
        "set no pod label",
    ),
    "posing as MLflow": (
        lambda b: (
            _pod_patch(b).setdefault("metadata", {}).update(labels={"app.kubernetes.io/name": "mlflow"})
        ),
        "set no pod label",
    ),
}


@pytest.mark.parametrize("env", dh.ENVS)
def test_the_launchers_trainjob_is_admitted_with_kueues_patches(env):
    policy, _ = _objects(env)
    body = launcher_trainjob(NAMESPACES[env])
    assert evaluate(policy, body) == []
    _kueue_patch(body)
    assert evaluate(policy, body) == []
    bare = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "t"},
        "spec": {"runtimeRef": {"name": "teacherlm-deepspeed", "kind": "TrainingRuntime"}},
    }
    assert evaluate(policy, bare) == []  # image and command from the runtime


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_policy_refuses(case):
    policy, _ = _objects("prod")
    mutate, phrase = REFUSED[case]
    body = launcher_trainjob("teacherlm")
    mutate(body)
    failed = evaluate(policy, body)
    assert len(failed) == 1 and phrase in failed[0], failed
