"""The Kubernetes manifests (manifests/), checked offline as Argo CD would deploy them.

Every env renders with `kubectl kustomize` and passes `kubernetes-validate --strict` for
Kubernetes 1.32; custom resources validate with the kubeflow-trainer-api models; the Argo CD
Applications match the project's schema (manifests/argocd/schema); checkov finds nothing that is
not skipped with a written reason; no secret is committed or rendered. kubectl and checkov come
from `bash scripts/ci-tools.sh`.
"""

from __future__ import annotations

import copy
import json
import re
import sys

import jsonschema
import pytest
import yaml

try:
    import deploy_helpers as dh
except ImportError:  # tests/ imported as a package
    from tests import deploy_helpers as dh

pytestmark = pytest.mark.timeout(120)

KUBERNETES_VERSION = "1.32.0"
NAMESPACES = {"dev": "teacherlm-dev", "prod": "teacherlm"}
# Kinds kubernetes-validate has no schema for, each validated here another way.
CUSTOM_KINDS = {"TrainingRuntime", "ClusterQueue", "LocalQueue", "ResourceFlavor", "WorkloadPriorityClass"}
# Kueue v0.19.2's v1beta2 CRD schemas (descriptions dropped) for the kinds components/kueue uses.
KUEUE_SCHEMAS = json.loads((dh.REPO / "tests" / "deploy" / "kueue_v1beta2.schema.json").read_text())
# The Secrets the manifests expect and never contain (docs/deploy.md tells how to create them).
SECRETS = {
    "teacherlm-minio": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    "teacherlm-pipelines-s3": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    "teacherlm-mlflow-auth": {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"},
    "teacherlm-mlflow-admin": {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"},
    "teacherlm-mlflow-s3": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"},
    "teacherlm-checkpoint-key": {"TEACHERLM_CHECKPOINT_KEY"},
    "teacherlm-postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD"},
}
RUNNER_RULES = {
    # delete: the follower removes a job past its timeout, so it does not keep its GPUs
    ("trainer.kubeflow.org", "trainjobs"): {"create", "get", "list", "watch", "delete"},
    ("kubeflow.org", "pytorchjobs"): {"create", "get", "list", "watch", "delete"},
    ("trainer.kubeflow.org", "trainjobs/status"): {"get", "list", "watch"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/log"): {"get", "list", "watch"},
    ("", "events"): {"get", "list", "watch"},
    ("events.k8s.io", "events"): {"get", "list", "watch"},
}
ARGOCD = dh.MANIFESTS / "argocd"
SCHEMA = ARGOCD / "schema" / "application.schema.json"
DEPLOY_DOC = dh.REPO / "docs" / "deploy.md"  # the deployment runbook
SECURITY_DOC = dh.REPO / "docs" / "security.md"  # the trust runbook: the Secrets it adds


def docs(env: str) -> list[dict]:
    return dh.render(env)[1]


def by_kind(env: str, kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs(env) if d["kind"] == kind}


def kubernetes_validate(path):
    cli = [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION, "--quiet"]
    return dh.run_tool([*cli, str(path)])


def quantity(value) -> float:
    """A Kubernetes quantity as a number (cpu in cores, memory/storage in bytes)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and (match[2] in units or not match[2]), f"not a quantity: {value!r}"
    return float(match[1]) * units.get(match[2], 1)


# --- rendering and schema validation -------------------------------------------------------------


@pytest.mark.parametrize("env", dh.ENVS)
def test_env_renders_into_its_namespace(env):
    namespace = NAMESPACES[env]
    kinds = {d["kind"] for d in docs(env)}
    assert {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "StatefulSet",
        "Deployment",
        "Service",
        "Job",
        "TrainingRuntime",
    } <= kinds
    assert set(by_kind(env, "Namespace")) == {namespace}
    cluster_scoped = {
        "Namespace",
        "PriorityClass",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    cluster_scoped |= {kind for kind, scope in KUEUE_SCHEMAS["scope"].items() if scope == "Cluster"}
    for doc in docs(env):
        want = None if doc["kind"] in cluster_scoped else namespace
        assert doc["metadata"].get("namespace") == want, f"{doc['kind']}/{doc['metadata']['name']}"
    assert {"teacherlm-minio", "teacherlm-postgres"} <= set(by_kind(env, "StatefulSet"))
    assert set(by_kind(env, "Deployment")) == {"teacherlm-mlflow"}
    assert {"teacherlm-minio", "teacherlm-mlflow", "teacherlm-postgres"} <= set(by_kind(env, "Service"))


@pytest.mark.parametrize("env", dh.ENVS)
def test_kubernetes_validate_strict(env, tmp_path):
    rendered = tmp_path / f"{env}.yaml"
    rendered.write_text(dh.render(env)[0])
    proc = kubernetes_validate(rendered)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in proc.stdout.splitlines():
        # Only custom resources may lack a schema; test_custom_resources_validate covers them.
        match = re.search(r"Couldn't find schema for kind (\S+)", line)
        assert match and match[1] in CUSTOM_KINDS, line


def test_kubernetes_validate_is_strict(tmp_path):
    """The validator rejects an unknown field, so a clean run above means something."""
    broken = copy.deepcopy(by_kind("dev", "Deployment")["teacherlm-mlflow"])
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    proc = kubernetes_validate(path)
    assert proc.returncode != 0 and "imagePullPolcy" in proc.stdout


@pytest.mark.parametrize("env", dh.ENVS)
def test_custom_resources_validate(env):
    """TrainingRuntime round-trips through the kubeflow-trainer-api models without losing a field,
    and its pod template passes strict Kubernetes validation as a PodTemplate."""
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainingRuntime
    from kubernetes_validate import validate

    runtimes = by_kind(env, "TrainingRuntime")
    assert runtimes
    for name, doc in runtimes.items():
        model = TrainerV1alpha1TrainingRuntime.from_dict(doc)
        assert json.loads(model.to_json()) == doc, f"TrainingRuntime/{name} has fields the API does not know"
        for job in doc["spec"]["template"]["spec"]["replicatedJobs"]:
            pod_template = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": f"{name}-{job['name']}"},
                "template": job["template"]["spec"]["template"],
            }
            validate(pod_template, KUBERNETES_VERSION, strict=True)
        # Trainer finds the node that runs the trainer by this label.
        labels = doc["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["metadata"]["labels"]
        assert labels["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"


def _closed(schema):
    """``schema`` with unknown fields refused (``kubectl apply --validate=strict``), where the CRD lists them."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def test_kueue_objects_use_v1beta2_field_names():
    """The Kueue component checked against Kueue's own v1beta2 CRD schemas (v0.19.2), unknown fields refused;
    the check itself refuses v1beta1's name for a field (spec.cohort, now cohortName)."""
    kueue = [d for d in docs("prod") if d["apiVersion"].startswith("kueue.x-k8s.io/")]
    assert {d["kind"] for d in kueue} == set(KUEUE_SCHEMAS["schemas"])
    for doc in kueue:
        assert doc["apiVersion"] == "kueue.x-k8s.io/v1beta2", doc["kind"]
        schema = _closed(KUEUE_SCHEMAS["schemas"][doc["kind"]])
        jsonschema.validate(doc, schema)
    (queue,) = [d for d in kueue if d["kind"] == "ClusterQueue"]
    old = copy.deepcopy(queue)
    old["spec"]["cohort"] = "team"
    with pytest.raises(jsonschema.ValidationError, match="cohort"):
        jsonschema.validate(old, _closed(KUEUE_SCHEMAS["schemas"]["ClusterQueue"]))


def test_kueue_is_a_component_used_by_prod_only_and_holds_together():
    """The LocalQueue the pipelines name feeds a ClusterQueue whose flavor is the GPU pool the specs select;
    the quota covers what a GPU task asks for; training outranks augmentation."""
    from teacherlm_core.kfp_support.placement import Placement

    component = yaml.safe_load((dh.MANIFESTS / "components" / "kueue" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    for env in dh.ENVS:
        kustomization = yaml.safe_load((dh.MANIFESTS / "envs" / env / "kustomization.yaml").read_text())
        assert ("../../components/kueue" in kustomization.get("components", [])) == (env == "prod")
        assert "kueue.x-k8s.io" not in dh.render(env)[0] or env == "prod"
    (local,) = by_kind("prod", "LocalQueue").values()
    cluster_queue = by_kind("prod", "ClusterQueue")[local["spec"]["clusterQueue"]]
    flavors = by_kind("prod", "ResourceFlavor")
    (group,) = cluster_queue["spec"]["resourceGroups"]
    for flavor in group["flavors"]:
        assert [r["name"] for r in flavor["resources"]] == group[
            "coveredResources"
        ]  # Kueue requires the order
        labels = flavors[flavor["name"]]["spec"]["nodeLabels"]
        assert labels.items() == {tuple(Placement().gpu_pool.split("=", 1))}
        quota = {r["name"]: quantity(r["nominalQuota"]) for r in flavor["resources"]}
        assert quota["nvidia.com/gpu"] >= 1 and quota["cpu"] >= 4 and quota["memory"] >= 64 * 2**30
    priorities = {name: d["value"] for name, d in by_kind("prod", "WorkloadPriorityClass").items()}
    assert priorities["teacherlm-training"] > priorities["teacherlm-augmentation"]
    assert cluster_queue["spec"]["preemption"]["withinClusterQueue"] == "LowerPriority"


MONITORING_SCHEMAS = json.loads((dh.REPO / "tests" / "deploy" / "monitoring_v1.schema.json").read_text())


def _monitoring(tmp_path) -> list[dict]:
    """prod with the opt-in monitoring component added, as an env would add it."""
    import os

    rel = os.path.relpath(dh.MANIFESTS, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": NAMESPACES["prod"],
        "resources": [f"{rel}/envs/prod"], "components": [f"{rel}/components/monitoring"],
    }))  # fmt: skip
    proc = dh.run_tool([dh.find_tool("kubectl"), "kustomize", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    names = {"teacherlm-gpu-tasks", "teacherlm", "teacherlm-metrics"}
    return [d for d in yaml.safe_load_all(proc.stdout) if d["metadata"]["name"] in names
            and d["kind"] in {"PodMonitor", "PrometheusRule", "NetworkPolicy"}]  # fmt: skip


def test_monitoring_component_uses_v1_field_names_and_scrapes_what_the_pipelines_serve(tmp_path):
    """PodMonitor and PrometheusRule against the Prometheus Operator's v1 CRD schemas (v0.93), unknown fields
    refused; the NetworkPolicy strictly valid; the PodMonitor selects the label and port the compiled
    GPU tasks carry, and the NetworkPolicy opens exactly that port."""
    from kubernetes_validate import validate

    from teacherlm_core.kfp_support.placement import METRICS_LABEL

    found = {d["kind"]: d for d in _monitoring(tmp_path)}
    assert set(found) == {"PodMonitor", "PrometheusRule", "NetworkPolicy"}
    for kind in ("PodMonitor", "PrometheusRule"):
        assert found[kind]["metadata"]["namespace"] == NAMESPACES["prod"]
        jsonschema.validate(found[kind], _closed(MONITORING_SCHEMAS["schemas"][kind]))
    validate(found["NetworkPolicy"], KUBERNETES_VERSION, strict=True)
    assert found["PodMonitor"]["spec"]["selector"]["matchLabels"] == {METRICS_LABEL: "true"}
    (endpoint,) = found["PodMonitor"]["spec"]["podMetricsEndpoints"]
    policy = found["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == {METRICS_LABEL: "true"}
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [endpoint["portNumber"]]
    bad = copy.deepcopy(found["PodMonitor"])
    bad["spec"]["podMetricsEndpoints"][0]["portNumbr"] = 9400
    with pytest.raises(jsonschema.ValidationError, match="portNumbr"):
        jsonschema.validate(bad, _closed(MONITORING_SCHEMAS["schemas"]["PodMonitor"]))
    for env in dh.ENVS:  # opt-in: no env needs the Prometheus Operator's CRDs
        assert "monitoring.coreos.com" not in dh.render(env)[0]


def test_alert_rules_pass_promtool_check_and_unit_tests(tmp_path):
    """A stalled shard fires after 30 minutes without a part (healthy and finished shards do not); a run
    quarantining half its records fires, one quarantining 1% does not (tests/deploy/alerts.test.yaml)."""
    rule = yaml.safe_load((dh.MANIFESTS / "components" / "monitoring" / "prometheusrule.yaml").read_text())
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    (tmp_path / "alerts.test.yaml").write_text(
        (dh.REPO / "tests" / "deploy" / "alerts.test.yaml").read_text()
    )
    promtool = dh.find_tool("promtool")
    for args in (
        ["check", "rules", tmp_path / "rules.yaml"],
        ["test", "rules", tmp_path / "alerts.test.yaml"],
    ):
        proc = dh.run_tool([promtool, *map(str, args)])  # rule_files: relative to the test file
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize("env", dh.ENVS)
def test_images_are_the_package_version(env):
    version = dh.package_version()
    ours = dh.IMAGE_REPOSITORY.format(name="")
    images = {
        c["image"]
        for doc in docs(env)
        for _, pod in dh.pod_specs(doc)
        for c in pod.get("initContainers", []) + pod["containers"]
    }
    teacherlm = {i for i in images if i.startswith(ours)}
    assert teacherlm, "no teacherlm image in the rendered manifests"
    for image in teacherlm:
        name, _, tag = image.split("@")[0].partition(":")  # prod pins a digest too (test_data_safety.py)
        assert name.removeprefix(ours) in dh.IMAGE_NAMES, f"{image}: no images/<name>/Dockerfile builds it"
        assert tag == version, f"{image}: tag must be teacherlm_core.__version__ ({version})"
    for image in images - teacherlm:
        # A release tag: a version (17.5) or a dated release (RELEASE.2025-04-22T...), not a floating one.
        tag = image.split("@")[0].rpartition(":")[2]
        assert re.search(r"\d+\.\d+|\d{4}-\d{2}-\d{2}", tag) and "latest" not in tag, f"{image} is not pinned"


# --- workload hygiene ----------------------------------------------------------------------------


@pytest.mark.parametrize("env", dh.ENVS)
def test_requests_limits_and_probes_everywhere(env):
    for doc in docs(env):
        for where, pod in dh.pod_specs(doc):
            long_running = doc["kind"] in {"Deployment", "StatefulSet"}
            for container in pod.get("initContainers", []) + pod["containers"]:
                resources = container.get("resources", {})
                for section in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(resources.get(section, {})), (
                        f"{where}/{container['name']}: {section}"
                    )
                    for key in ("cpu", "memory"):
                        assert quantity(resources["requests"][key]) <= quantity(resources["limits"][key])
                # Probes say whether a server is up; run-to-completion containers have none.
                if long_running and container in pod["containers"]:
                    assert "readinessProbe" in container and "livenessProbe" in container, (
                        f"{where}/{container['name']}"
                    )


@pytest.mark.parametrize("env", dh.ENVS)
def test_pods_run_as_non_root_and_locked_down(env):
    for doc in docs(env):
        for where, pod in dh.pod_specs(doc):
            context = pod.get("securityContext", {})
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser", 0) >= 10000, where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert pod.get("automountServiceAccountToken") is False, (
                f"{where}: mount a token only where needed"
            )
            assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), where
            for container in pod.get("initContainers", []) + pod["containers"]:
                sc = container.get("securityContext", {})
                assert sc.get("allowPrivilegeEscalation") is False, f"{where}/{container['name']}"
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}/{container['name']}"
                assert not sc.get("privileged"), f"{where}/{container['name']}"


@pytest.mark.parametrize("env", dh.ENVS)
def test_rbac_lets_the_runner_drive_trainjobs_and_nothing_more(env):
    assert not by_kind(env, "ClusterRole") and not by_kind(env, "ClusterRoleBinding")
    role = by_kind(env, "Role")["teacherlm-trainjob-runner"]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert "*" not in (group, resource) and "*" not in rule["verbs"]
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == RUNNER_RULES
    binding = by_kind(env, "RoleBinding")["teacherlm-trainjob-runner"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "teacherlm-trainjob-runner",
    }
    # Ours only: runs are submitted as teacherlm-pipeline-runner, never Kubeflow's default-editor.
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "teacherlm-pipeline-runner", "namespace": NAMESPACES[env]}
    ]
    assert "teacherlm-pipeline-runner" in by_kind(env, "ServiceAccount")
    # The publisher only edits pipelines through Kubeflow's own aggregated ClusterRole.
    publisher = by_kind(env, "RoleBinding")["teacherlm-publisher-kfp-edit"]
    assert publisher["roleRef"]["name"] == "kubeflow-pipelines-edit"
    assert [s["name"] for s in publisher["subjects"]] == ["teacherlm-publisher"]


@pytest.mark.parametrize("env", dh.ENVS)
def test_network_policies_cover_every_server(env):
    policies = list(by_kind(env, "NetworkPolicy").values())

    def selects(policy, labels):
        wanted = policy["spec"]["podSelector"].get("matchLabels", {})
        return all(labels.get(k) == v for k, v in wanted.items())

    for doc in docs(env):
        for where, _ in dh.pod_specs(doc):
            if doc["kind"] in CUSTOM_KINDS:
                continue  # TrainJob nodes talk to each other on ports chosen at run time
            template = doc["spec"].get("template") or doc["spec"]["jobTemplate"]["spec"]["template"]
            labels = template["metadata"]["labels"]
            mine = [p for p in policies if selects(p, labels)]
            deny = [p for p in mine if not p["spec"].get("ingress") and not p["spec"].get("egress")]
            assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in deny), (
                f"{where}: no default deny"
            )
    postgres = by_kind(env, "NetworkPolicy")["teacherlm-postgres"]["spec"]["ingress"]
    assert postgres == [
        {
            "from": [
                {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}}},
                {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres-backup"}}},
            ],
            "ports": [{"protocol": "TCP", "port": 5432}],
        }
    ]


@pytest.mark.parametrize("env", dh.ENVS)
def test_publish_job_is_an_argocd_postsync_hook(env):
    job = by_kind(env, "Job")["teacherlm-publish-pipelines"]
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PostSync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["teacherlm", "pipeline", "publish"]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "teacherlm-publisher"
    # It publishes the pipelines the core image carries: the compiled specs ship in its teacherlm wheel.
    assert container["image"].startswith(dh.IMAGE_REPOSITORY.format(name="core") + ":")
    _, stages = dh.dockerfile_stages(dh.IMAGES_DIR / "core" / "Dockerfile")
    copies = [i.args.split() for i in stages[0].all("COPY")]
    assert ["pipelines", "./pipelines"] in copies and ["components", "./components"] in copies


def test_gpu_pool_is_a_component_used_by_prod_only():
    component = yaml.safe_load((dh.MANIFESTS / "components" / "gpu-pool" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    for env in dh.ENVS:
        kustomization = yaml.safe_load((dh.MANIFESTS / "envs" / env / "kustomization.yaml").read_text())
        assert ("../../components/gpu-pool" in kustomization.get("components", [])) == (env == "prod")
    assert "nvidia.com/gpu" not in dh.render("dev")[0]
    (priority,) = by_kind("prod", "PriorityClass").values()
    pod = dh.pod_specs(by_kind("prod", "TrainingRuntime")["teacherlm-deepspeed"])[0][1]
    assert pod["priorityClassName"] == priority["metadata"]["name"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_prod_volumes_are_larger_than_dev():
    for name in ("teacherlm-minio", "teacherlm-postgres"):
        size = {
            env: quantity(
                by_kind(env, "StatefulSet")[name]["spec"]["volumeClaimTemplates"][0]["spec"]["resources"][
                    "requests"
                ]["storage"]
            )
            for env in dh.ENVS
        }
        assert size["prod"] > size["dev"], name


# --- Argo CD -------------------------------------------------------------------------------------


def applications() -> dict[str, dict]:
    files = sorted(ARGOCD.glob("*.yaml")) + sorted((ARGOCD / "apps").glob("*.yaml"))
    out = {}
    for path in files:
        doc = yaml.safe_load(path.read_text())
        if doc.get("kind") == "Application":
            out[str(path.relative_to(dh.REPO))] = doc
    return out


def test_argocd_applications_match_the_schema():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    apps = applications()
    assert set(apps) == {
        "manifests/argocd/root.yaml",
        "manifests/argocd/apps/teacherlm-dev.yaml",
        "manifests/argocd/apps/teacherlm-prod.yaml",
    }
    for path, app in apps.items():
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(app)]
        assert not errors, f"{path}: {errors}"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda a: a["spec"]["syncPolicy"]["automated"].update(prun=True),  # a typo
        lambda a: a["spec"]["source"].update(path="../outside"),
        lambda a: a["spec"]["destination"].update(name="in-cluster"),  # server and name
        lambda a: a["metadata"].update(namespace="default"),
        lambda a: a["spec"]["syncPolicy"].update(syncOptions=["CreateNamespace=yes"]),
    ],
    ids=["typo", "path-escapes", "two-destinations", "not-in-argocd", "bad-sync-option"],
)
def test_argocd_schema_rejects_mistakes(mutate):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    app = copy.deepcopy(applications()["manifests/argocd/apps/teacherlm-dev.yaml"])
    mutate(app)
    assert list(validator.iter_errors(app))


def test_app_of_apps_points_at_the_envs():
    apps = applications()
    root = apps.pop("manifests/argocd/root.yaml")
    assert root["spec"]["source"]["path"] == "manifests/argocd/apps"
    listed = yaml.safe_load((ARGOCD / "apps" / "kustomization.yaml").read_text())["resources"]
    assert {f"manifests/argocd/apps/{name}" for name in listed} == {
        *apps,
        "manifests/argocd/apps/project-prod.yaml",
    }
    rendered = dh.run_tool([dh.find_tool("kubectl"), "kustomize", str(ARGOCD / "apps")])
    assert rendered.returncode == 0, rendered.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d]
    assert kinds.count("Application") == len(apps) and kinds.count("AppProject") == 1
    assert {a["spec"]["source"]["repoURL"] for a in apps.values()} == {root["spec"]["source"]["repoURL"]}
    envs = set()
    for app in apps.values():
        path = app["spec"]["source"]["path"]
        env = path.removeprefix("manifests/envs/")
        assert env in dh.ENVS and (dh.REPO / path / "kustomization.yaml").is_file(), path
        assert app["spec"]["destination"]["namespace"] == NAMESPACES[env]
        kustomization = yaml.safe_load((dh.REPO / path / "kustomization.yaml").read_text())
        assert kustomization["namespace"] == NAMESPACES[env]
        envs.add(env)
    assert envs == set(dh.ENVS)


def test_no_gitops_change_can_delete_stored_data():
    """Deleting, renaming or dropping an Application, or a resource leaving git, never deletes the
    namespace or the stores' volumes; prod moves only to a pinned release, in its own project."""
    protected = "Prune=false,Delete=false"
    for env in dh.ENVS:
        for kind, name in [("Namespace", NAMESPACES[env]), ("StatefulSet", "teacherlm-minio"),
                           ("StatefulSet", "teacherlm-postgres")]:  # fmt: skip
            doc = by_kind(env, kind)[name]
            assert doc["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == protected, (env, name)
            if kind == "StatefulSet":
                policy = doc["spec"]["persistentVolumeClaimRetentionPolicy"]
                assert policy == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    classes = by_kind("prod", "StorageClass")
    for name in ("teacherlm-minio", "teacherlm-postgres"):
        (claim,) = by_kind("prod", "StatefulSet")[name]["spec"]["volumeClaimTemplates"]
        assert classes[claim["spec"]["storageClassName"]]["reclaimPolicy"] == "Retain", name
    for env in dh.ENVS:  # MLflow's database is dumped every night onto a volume that is kept too
        backup = by_kind(env, "CronJob")["teacherlm-postgres-backup"]
        (container,) = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert "pg_dump" in container["args"][0] and backup["spec"]["concurrencyPolicy"] == "Forbid"
        claim = by_kind(env, "PersistentVolumeClaim")["teacherlm-postgres-backup"]
        assert claim["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == protected
        assert env == "dev" or classes[claim["spec"]["storageClassName"]]["reclaimPolicy"] == "Retain"
    apps = applications()
    prod = apps["manifests/argocd/apps/teacherlm-prod.yaml"]
    assert "automated" not in prod["spec"].get("syncPolicy", {})  # synced by hand, never from main
    assert re.fullmatch(r"v\d+\.\d+\.\d+", prod["spec"]["source"]["targetRevision"])
    assert not prod["metadata"].get("finalizers")  # deleting the Application cascades to nothing
    assert prod["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == protected  # nor does root
    (project,) = [d for d in yaml.safe_load_all((ARGOCD / "apps" / "project-prod.yaml").read_text()) if d]
    assert project["kind"] == "AppProject" and prod["spec"]["project"] == project["metadata"]["name"]
    assert project["spec"]["destinations"] == [
        {"server": prod["spec"]["destination"]["server"], "namespace": "teacherlm"}
    ]
    assert project["spec"]["sourceRepos"] == [prod["spec"]["source"]["repoURL"]]
    for app in apps.values():  # what prod may not: other Applications stay out of its project
        assert app is prod or app["spec"]["project"] != project["metadata"]["name"]


def test_mlflow_stays_up_through_a_drain_in_prod():
    (budget,) = by_kind("prod", "PodDisruptionBudget").values()
    mlflow = by_kind("prod", "Deployment")["teacherlm-mlflow"]
    assert (
        budget["spec"]["selector"]["matchLabels"].items()
        <= mlflow["spec"]["template"]["metadata"]["labels"].items()
    )
    assert mlflow["spec"]["replicas"] - budget["spec"]["maxUnavailable"] >= 1


@pytest.mark.parametrize("env", dh.ENVS)
def test_mlflow_upgrades_its_database_schema_before_serving(env):
    """On a version bump the schema is migrated before any server starts (checked on a real
    cluster only: here, that the step is there, first, locked, and reads no secret from the spec)."""
    pod = by_kind(env, "Deployment")["teacherlm-mlflow"]["spec"]["template"]["spec"]
    (upgrade,) = [c for c in pod["initContainers"] if c["name"] == "db-upgrade"]
    script = upgrade["args"][0]
    assert '["mlflow", "db", "upgrade", url]' in script and "pg_advisory_lock" in script
    assert upgrade["image"] == pod["containers"][0]["image"]  # the MLflow version the server runs
    assert not any("value" in e and "PASSWORD" in e["name"] for e in upgrade.get("env", []))


@pytest.mark.parametrize("env", dh.ENVS)
def test_the_namespace_admits_no_privileged_or_host_pod(env):
    """Pod Security Admission on the namespace: a TrainJob (whose runtime patches its creator
    writes) can never become a privileged or host pod; "restricted" is warned about and audited.
    Only a real cluster's API server enforces it; here, that the labels are there and valid."""
    labels = by_kind(env, "Namespace")[NAMESPACES[env]]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] in ("baseline", "restricted")
    assert (
        labels["pod-security.kubernetes.io/warn"]
        == labels["pod-security.kubernetes.io/audit"]
        == "restricted"
    )
    version = KUBERNETES_VERSION.rsplit(".", 1)[0]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == f"v{version}"


# --- checkov -------------------------------------------------------------------------------------


def test_checkov_finds_nothing_unexplained():
    checkov = dh.find_tool("checkov")
    dh.find_tool("kubectl")  # checkov's kustomize framework renders with it
    proc = dh.run_tool(
        [checkov, "--config-file", "manifests/.checkov.yaml", "--directory", "manifests", "--output", "json"],
        timeout=110,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_type = {r["check_type"]: r for r in reports}
    # The kustomize framework silently does nothing without kubectl: make sure it ran.
    assert by_type.get("kustomize", {}).get("summary", {}).get("resource_count", 0) > 0, proc.stderr[-3000:]
    assert by_type.get("kubernetes", {}).get("summary", {}).get("resource_count", 0) > 0
    failures, unexplained = [], []
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["check_type"]
        for check in report["results"].get("failed_checks", []):
            failures.append(
                f"{check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}"
            )
        for check in report["results"].get("skipped_checks", []):
            reason = (check.get("check_result") or {}).get("suppress_comment") or ""
            if len(reason.strip()) < 20:
                unexplained.append(f"{check['check_id']} {check['resource']}: {reason!r}")
    assert not failures, "\n".join(failures)
    assert not unexplained, "skips need a written reason:\n" + "\n".join(unexplained)
    assert proc.returncode == 0


# --- secrets -------------------------------------------------------------------------------------

# Anywhere in the repository: formats that are credentials and nothing else.
SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "AWS secret access key": re.compile(
        r"(?i)aws_secret_access_key\W{1,4}[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
    ),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
}
# In what gets deployed (images/, manifests/, docs/, scripts/ and the rendered envs) also the
# looser shapes; elsewhere tests may hold fake ones on purpose (e.g. to test redaction).
DEPLOY_DIRS = ("images/", "manifests/", "docs/", "scripts/")
DEPLOY_PATTERNS = SECRET_PATTERNS | {
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"$]+:[^/\s:@'\"${}]{3,}@[\w.-]+"),
    "literal password": re.compile(
        r"(?i)\b\w*password\w*[\"']?\s*[:=]\s*[\"']?(?![\"'$({<\s]|/run/secrets)[^\s\"',]{4,}"
    ),
}
# Names of variables whose literal value would be a secret.
SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|api_?key|access_?key|credential)")


def test_no_secret_is_committed():
    found = []
    for path in dh.repo_files():
        if path.stat().st_size > 2_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        relative = str(path.relative_to(dh.REPO))
        patterns = DEPLOY_PATTERNS if relative.startswith(DEPLOY_DIRS) else SECRET_PATTERNS
        for what, pattern in patterns.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{relative}:{line}: {what}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("env", dh.ENVS)
def test_no_secret_is_rendered(env):
    text, documents = dh.render(env)
    for what, pattern in DEPLOY_PATTERNS.items():
        assert not pattern.search(text), f"{what}: {pattern.search(text)[0]}"
    referenced: dict[str, set[str]] = {}
    for doc in documents:
        assert doc["kind"] != "Secret", "Secrets are created by hand, never kept in git"
        if doc["kind"] == "ConfigMap":
            for key in doc.get("data", {}):
                assert not SECRET_NAME.search(key), f"ConfigMap/{doc['metadata']['name']}: {key}"
        for where, pod in dh.pod_specs(doc):
            for container in pod.get("initContainers", []) + pod["containers"]:
                for var in container.get("env", []):
                    # *_FILE and *_PATH variables name a mounted file, not the secret itself.
                    names_a_file = var["name"].endswith(("_FILE", "_PATH"))
                    if "value" in var and SECRET_NAME.search(var["name"]) and not names_a_file:
                        pytest.fail(f"{where}/{container['name']}: {var['name']} has a literal value")
                    ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        referenced.setdefault(ref["name"], set()).add(ref["key"])
                for source in container.get("envFrom", []):
                    assert "secretRef" not in source, f"{where}: envFrom a whole Secret"
            for volume in pod.get("volumes", []):
                if "secret" in volume:
                    referenced.setdefault(volume["secret"]["secretName"], set())
    assert set(referenced) == set(SECRETS)
    for name, keys in referenced.items():
        assert keys <= SECRETS[name], f"{name}: {keys - SECRETS[name]}"


# --- the deploy docs match the manifests ---------------------------------------------------------


def test_deploy_doc_matches_the_manifests():
    assert DEPLOY_DOC.is_file()
    doc = DEPLOY_DOC.read_text()
    runbooks = doc + SECURITY_DOC.read_text()
    for name, keys in SECRETS.items():
        assert f"secret generic {name}" in runbooks, (
            f"docs/deploy.md, docs/security.md: how to create Secret {name}?"
        )
        for key in keys:
            assert key in runbooks, f"docs/deploy.md, docs/security.md: Secret {name} needs key {key}"
    for env, namespace in NAMESPACES.items():
        assert f"manifests/envs/{env}" in doc and namespace in doc
    assert "kubectl apply -n argocd -f manifests/argocd/root.yaml" in doc
    repo_url = applications()["manifests/argocd/root.yaml"]["spec"]["source"]["repoURL"]
    assert repo_url in doc, "docs/deploy.md should say which repoURL to change"
    # Every `kubectl port-forward svc/NAME LOCAL:PORT` names a Service and port that exist.
    services = {
        name: {p["port"] for p in svc["spec"]["ports"]} for name, svc in by_kind("prod", "Service").items()
    }
    forwards = re.findall(r"port-forward(?: -n \S+)? svc/([\w-]+) (\d+):(\d+)", doc)
    assert forwards, "docs/deploy.md should show how to reach MLflow and MinIO"
    for name, _, port in forwards:
        if name.startswith("teacherlm-"):
            assert name in services and int(port) in services[name], f"svc/{name}:{port}"
    mentioned = {name for name, _, _ in forwards}
    assert {"teacherlm-mlflow", "teacherlm-minio"} <= mentioned
    for image in dh.IMAGE_NAMES:
        assert dh.IMAGE_REPOSITORY.format(name=image) in doc


@pytest.mark.parametrize("env", dh.ENVS)
def test_the_launchers_training_runtime_is_the_one_the_manifests_define(env):
    """One definition (TEACHERLM_RUNTIME): a TrainJob the launcher renders names a runtime that exists,
    of that kind, in the namespace the pipeline's TrainJobs are created in."""
    from teacherlm_core.train.k8s import TEACHERLM_RUNTIME, ClusterJob, render_trainjob

    runtimes = by_kind(env, TEACHERLM_RUNTIME.kind)
    assert TEACHERLM_RUNTIME.name in runtimes, f"{env}: no {TEACHERLM_RUNTIME.kind}/{TEACHERLM_RUNTIME.name}"
    runtime = runtimes[TEACHERLM_RUNTIME.name]
    job = ClusterJob(name="t", namespace=runtime["metadata"]["namespace"], image="i", command=["x"])
    ref = render_trainjob(job)["spec"]["runtimeRef"]
    assert ref == {"apiGroup": runtime["apiVersion"].split("/")[0], "kind": runtime["kind"],
                   "name": runtime["metadata"]["name"]}  # fmt: skip


def _spec_references() -> dict[str, set[str]]:
    """The ConfigMaps, Secrets and ConfigMap/Secret keys the compiled specs map into their tasks."""
    import yaml

    refs: dict[str, set[str]] = {
        "configmaps": set(),
        "secrets": set(),
        "configmap_keys": set(),
        "secret_keys": set(),
    }
    for spec_file in (dh.REPO / "pipelines").glob("*/*.yaml"):
        docs = list(yaml.safe_load_all(spec_file.read_text()))
        for executor in docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
            for cm in executor.get("configMapAsEnv", []):
                refs["configmaps"].add(cm["configMapName"])
                refs["configmap_keys"] |= {kv["configMapKey"] for kv in cm["keyToEnv"]}
            for sec in executor.get("secretAsEnv", []):
                refs["secrets"].add(sec["secretName"])
                refs["secret_keys"] |= {kv["secretKey"] for kv in sec["keyToEnv"]}
    return refs


@pytest.mark.parametrize("env", dh.ENVS)
def test_every_configmap_and_secret_the_specs_read_is_provided(env):
    """The specs read ConfigMap teacherlm-env and Secret teacherlm-minio: each environment defines the
    ConfigMap with every key the specs read, and its workloads use the Secret with those keys (the
    Secret itself is created by hand, never committed: docs/deploy.md "Create the Secrets")."""
    refs = _spec_references()
    assert refs["configmaps"] and refs["secrets"]
    configmaps = by_kind(env, "ConfigMap")
    for name in refs["configmaps"]:
        assert name in configmaps, f"{env}: ConfigMap {name} is read by the pipelines but not defined"
        assert refs["configmap_keys"] <= set(configmaps[name]["data"]), (env, name)
    used = {}
    for doc in docs(env):
        for _, pod in dh.pod_specs(doc):
            for c in pod.get("containers", []) + pod.get("initContainers", []):
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        used.setdefault(ref["name"], set()).add(ref["key"])
    readme = DEPLOY_DOC.read_text()
    keys_of: dict[str, set[str]] = {}  # each Secret with the keys the specs read from it
    for _, executor in _spec_executors():
        for sec in executor.get("secretAsEnv", []):
            keys_of.setdefault(sec["secretName"], set()).update(kv["secretKey"] for kv in sec["keyToEnv"])
    for name in refs["secrets"]:
        assert keys_of[name] <= used.get(name, set()), (
            f"{env}: no workload reads Secret {name} with those keys"
        )
        assert f"secret generic {name}" in readme, f"docs/deploy.md does not say how to create Secret {name}"


# --- least privilege (issue 15 item 8) and node labels --------------------------------------------


def _spec_executors():
    import yaml

    for spec_file in sorted((dh.REPO / "pipelines").glob("*/*.yaml")):
        platform = list(yaml.safe_load_all(spec_file.read_text()))[1]
        for label, executor in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
            yield f"{spec_file.name}/{label}", executor


@pytest.mark.parametrize("env", dh.ENVS)
def test_pipeline_pods_use_a_scoped_s3_user_not_minios_root(env):
    """Pipeline steps and TrainJob nodes read the Secret of a scoped MinIO user, created by a Job of the
    manifests with a policy on the bucket teacherlm only; MinIO's root Secret is read by MinIO itself,
    and that Job, nothing else (MLflow's artifact proxy has a user of its own: tests/deploy/test_trust.py)."""
    import json

    (minio,) = [
        d for d in docs(env) if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "teacherlm-minio"
    ]
    root = {v["secret"]["secretName"] for v in minio["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert root == {"teacherlm-minio"}
    spec_secrets = {s["secretName"] for _, ex in _spec_executors() for s in ex.get("secretAsEnv", [])
                    if any(kv["envVar"] == "AWS_ACCESS_KEY_ID" for kv in s["keyToEnv"])}  # fmt: skip
    assert spec_secrets == {"teacherlm-pipelines-s3"}
    readers = set()
    for doc in docs(env):
        for where, pod in dh.pod_specs(doc):
            text = json.dumps(pod)
            if '"teacherlm-minio"' in text.replace('"name": "teacherlm-minio"', ""):
                readers.add(where.split("/")[0] + "/" + doc["metadata"]["name"])
    assert readers == {
        "StatefulSet/teacherlm-minio",
        "Job/teacherlm-minio-users",
    }  # MLflow: teacherlm-mlflow-s3
    runtime = dh.pod_specs(by_kind(env, "TrainingRuntime")["teacherlm-deepspeed"])[0][1]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in runtime["containers"][0]["env"]
            if e["name"].startswith("AWS_") and "valueFrom" in e}  # fmt: skip
    assert refs == {"teacherlm-pipelines-s3"}

    job = by_kind(env, "Job")["teacherlm-minio-users"]
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    for command in ("mc admin policy create teacherlm teacherlm-pipelines /policies/teacherlm-pipelines.json",
                    'mc admin user add teacherlm "$PIPELINES_ACCESS_KEY"',
                    'mc admin policy attach teacherlm teacherlm-pipelines --user "$PIPELINES_ACCESS_KEY"'):  # fmt: skip
        assert command in script
    policy = json.loads(
        by_kind(env, "ConfigMap")["teacherlm-minio-policies"]["data"]["teacherlm-pipelines.json"]
    )
    resources = {r for st in policy["Statement"] for r in st["Resource"]}
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert resources == {"arn:aws:s3:::teacherlm", "arn:aws:s3:::teacherlm/*"}
    assert all(a.startswith("s3:") and "*" not in a for a in actions) and "s3:CreateBucket" not in actions
    assert {st["Effect"] for st in policy["Statement"]} == {"Allow"}


@pytest.mark.parametrize("env", dh.ENVS)
def test_mlflow_is_reachable_only_from_what_tracks_runs(env):
    """MLflow's NetworkPolicy admits only pods labelled teacherlm.io/mlflow-client=true: every pipeline
    step (the compiled specs) and every TrainJob node (the runtime) carry it; nothing else does."""
    from teacherlm_core.kfp_support.placement import MLFLOW_CLIENT_LABEL

    ingress = by_kind(env, "NetworkPolicy")["teacherlm-mlflow"]["spec"]["ingress"]
    assert [rule["from"] for rule in ingress] == [
        [{"podSelector": {"matchLabels": {MLFLOW_CLIENT_LABEL: "true"}}}]
    ]
    for where, executor in _spec_executors():
        assert executor.get("podMetadata", {}).get("labels", {}).get(MLFLOW_CLIENT_LABEL) == "true", where
    labelled = set()
    for doc in docs(env):
        if doc["kind"] == "TrainingRuntime":
            for job in doc["spec"]["template"]["spec"]["replicatedJobs"]:
                if (
                    job["template"]["spec"]["template"]["metadata"]["labels"].get(MLFLOW_CLIENT_LABEL)
                    == "true"
                ):
                    labelled.add(f"TrainingRuntime/{doc['metadata']['name']}")
        elif doc["kind"] in ("Deployment", "StatefulSet", "Job") and doc["spec"]["template"]["metadata"][
            "labels"
        ].get(MLFLOW_CLIENT_LABEL):
            labelled.add(f"{doc['kind']}/{doc['metadata']['name']}")
    assert labelled == {"TrainingRuntime/teacherlm-deepspeed"}


@pytest.mark.parametrize("env", dh.ENVS)
def test_mlflow_basic_auth_is_an_option_its_clients_follow(env):
    """With the optional Secret teacherlm-mlflow-auth, MLflow runs its basic-auth app, and pipeline steps
    and TrainJob nodes send that Secret's user and password (optional everywhere: no Secret, no auth)."""
    deployment = by_kind(env, "Deployment")["teacherlm-mlflow"]["spec"]["template"]["spec"]
    (volume,) = [
        v for v in deployment["volumes"] if v.get("secret", {}).get("secretName") == "teacherlm-mlflow-auth"
    ]
    assert volume["secret"]["optional"] is True
    assert "auth=(--app-name basic-auth)" in deployment["containers"][0]["args"][0]
    for where, executor in _spec_executors():
        (auth,) = [s for s in executor["secretAsEnv"] if s["secretName"] == "teacherlm-mlflow-auth"]
        assert auth["optional"] is True and {kv["envVar"] for kv in auth["keyToEnv"]} == {
            "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}, where  # fmt: skip


@pytest.mark.parametrize("env", dh.ENVS)
def test_every_node_label_the_specs_select_on_is_provided_or_documented(env):
    """A node selector nobody can satisfy leaves a step Pending forever: each label the compiled specs
    (and the TrainJob launcher's default) select on is set in the manifests or documented as a
    `kubectl label node` step in docs/deploy.md."""
    from teacherlm_core.kfp_support.placement import Placement

    selected = {
        (k, v) for _, ex in _spec_executors() for k, v in ex.get("nodeSelector", {}).get("labels", {}).items()
    }
    selected.add(tuple(Placement().gpu_pool.split("=", 1)))
    rendered = {
        (k, v)
        for doc in docs(env)
        for _, pod in dh.pod_specs(doc)
        for k, v in pod.get("nodeSelector", {}).items()
    }
    readme = DEPLOY_DOC.read_text()
    for key, value in selected:
        assert (
            (key, value) in rendered
            or f"kubectl label node <gpu-node> {key}={value}" in readme
            or (f"kubectl label node <cpu-node> {key}={value}" in readme)
        ), f"{env}: node label {key}={value} is selected by the specs but neither provided nor documented"
