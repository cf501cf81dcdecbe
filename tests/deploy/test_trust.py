"""Trust on the cluster path (issue 24 item 11), on the rendered manifests and compiled specs.

Who holds the checkpoint key, which identity pipeline runs use and what it may do, which MinIO and
MLflow users each part logs in as, and which connections the NetworkPolicies leave open between
the pods that exist (the rendered servers, the TrainingRuntime's nodes, every compiled step).
The rules are in docs/security.md; what only a cluster can check is said there too.
"""

from __future__ import annotations

import json

import pytest
import yaml

try:
    import deploy_helpers as dh
except ImportError:  # tests/ imported as a package
    from tests import deploy_helpers as dh

pytestmark = pytest.mark.timeout(120)

NAMESPACES = {"dev": "teacherlm-dev", "prod": "teacherlm"}
KEY_SECRET = "teacherlm-checkpoint-key"
RUNNER = "teacherlm-pipeline-runner"


def docs(env: str) -> list[dict]:
    return dh.render(env)[1]


def by_kind(env: str, kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs(env) if d["kind"] == kind}


def spec_executors():
    for spec_file in sorted((dh.REPO / "pipelines").glob("*/*.yaml")):
        platform = list(yaml.safe_load_all(spec_file.read_text()))[1]
        for label, executor in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
            yield f"{spec_file.parent.name}/{label}", executor


def runtime_pod(env: str) -> tuple[dict, dict]:
    """(labels, pod spec) of a TrainJob node as Trainer creates it: the runtime's pod template, plus
    the label JobSet puts on every pod of the job (the follower lists pods by it)."""
    from teacherlm_core.train.k8s import TRAINJOB

    runtime = by_kind(env, "TrainingRuntime")["teacherlm-deepspeed"]
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    template = job["template"]["spec"]["template"]
    return template["metadata"]["labels"] | {TRAINJOB.pod_label: "tlm-student-0123abcd-plain"}, template[
        "spec"
    ]


# --- the checkpoint key ----------------------------------------------------------------------------


@pytest.mark.parametrize("env", dh.ENVS)
def test_the_checkpoint_key_is_held_only_where_checkpoints_are_signed_and_verified(env):
    """Only TrainJob nodes read the key (required there); no pipeline step, server or Job does, and no
    Role lets anyone read it through the API or exec into a pod that holds it."""
    holders = set()
    for doc in docs(env):
        for where, pod in dh.pod_specs(doc):
            if KEY_SECRET in json.dumps(pod):
                holders.add(where)
    assert holders == {"TrainingRuntime/teacherlm-deepspeed/node"}
    _, pod = runtime_pod(env)
    env_vars = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env_vars["TEACHERLM_CHECKPOINT_KEY"]["valueFrom"]["secretKeyRef"]["name"] == KEY_SECRET
    assert env_vars["TEACHERLM_CHECKPOINT_KEY_REQUIRED"]["value"] == "true"
    assert pod["automountServiceAccountToken"] is False  # the nodes themselves call no API
    for where, executor in spec_executors():
        assert KEY_SECRET not in json.dumps(executor), where
    for name, role in by_kind(env, "Role").items():
        for rule in role["rules"]:
            resources = set(rule["resources"])
            assert not resources & {"pods/exec", "pods/attach", "pods/portforward"}, name
            assert not ("pods" in resources and set(rule["verbs"]) & {"create", "update", "patch"}), name
            if "secrets" in resources:
                assert rule["verbs"] == ["get"] and rule["resourceNames"] == ["mlpipeline-minio-artifact"], (
                    name
                )


def test_a_node_without_the_key_stops_with_one_line_before_any_work(tmp_path):
    """`teacherlm train student` on the cluster path (the runtime's TEACHERLM_CHECKPOINT_KEY_REQUIRED)
    exits 2 in one line naming the Secret, before it reads its data or model; locally it goes on."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TEACHERLM_CHECKPOINT_KEY")}
    env |= {
        "TEACHERLM_CHECKPOINT_KEY_REQUIRED": "true",
        "TEACHERLM_WORKDIR": str(tmp_path),
        "HOME": str(tmp_path),
    }
    missing = tmp_path / "no-such-data.jsonl"  # read only after the key check
    args = [
        sys.executable,
        "-m",
        "teacherlm_core",
        "train",
        "student",
        "--config",
        "student_tiny",
        "--model",
        "org/base",
        "--data",
        str(missing),
        "--output",
        str(tmp_path / "out"),
        "--no-track",
    ]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)  # (a short key: below)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "is not set" in lines[0] and f"kubectl create secret generic {KEY_SECRET}" in lines[0]
    assert "Traceback" not in proc.stderr and "no-such-data" not in proc.stderr
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        env=env | {"TEACHERLM_CHECKPOINT_KEY_REQUIRED": "false"},
    )
    assert proc.returncode == 2 and "no-such-data" in proc.stderr  # got past the check to the data


def test_require_key_reads_the_runtimes_flag(monkeypatch):
    from teacherlm_core.train.outputs import CheckpointKeyMissing, require_key

    monkeypatch.delenv("TEACHERLM_CHECKPOINT_KEY", raising=False)
    for off in ("", "0", "false", "no"):
        monkeypatch.setenv("TEACHERLM_CHECKPOINT_KEY_REQUIRED", off)
        require_key()  # local runs may go without
    monkeypatch.setenv("TEACHERLM_CHECKPOINT_KEY_REQUIRED", "true")
    with pytest.raises(CheckpointKeyMissing, match="is not set"):
        require_key()
    monkeypatch.setenv("TEACHERLM_CHECKPOINT_KEY", " " * 40)
    with pytest.raises(CheckpointKeyMissing, match="is not set"):
        require_key()
    monkeypatch.setenv("TEACHERLM_CHECKPOINT_KEY", "short")
    with pytest.raises(CheckpointKeyMissing, match="shorter than 32 characters"):
        require_key()
    monkeypatch.setenv("TEACHERLM_CHECKPOINT_KEY", "0123456789abcdef" * 4)
    require_key()


# --- the identity of pipeline runs -----------------------------------------------------------------


@pytest.mark.parametrize("env", dh.ENVS)
def test_pipeline_runs_have_their_own_service_account_and_nothing_is_granted_to_default_editor(env):
    from teacherlm_core.kfp_support.client import RUN_SERVICE_ACCOUNT

    assert RUN_SERVICE_ACCOUNT == RUNNER and RUNNER in by_kind(env, "ServiceAccount")
    bindings = by_kind(env, "RoleBinding")
    for binding in bindings.values():
        assert all(s["name"] != "default-editor" for s in binding["subjects"]), binding["metadata"]["name"]
    bound = {
        b["roleRef"]["name"]
        for b in bindings.values()
        if {"kind": "ServiceAccount", "name": RUNNER, "namespace": NAMESPACES[env]} in b["subjects"]
    }
    assert bound == {"teacherlm-trainjob-runner", "teacherlm-kfp-run"}
    kfp = {
        (g, r): (sorted(rule["verbs"]), rule.get("resourceNames"))
        for rule in by_kind(env, "Role")["teacherlm-kfp-run"]["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert kfp == {
        ("", "configmaps"): (["get", "list", "watch"], ["kfp-launcher"]),
        ("", "secrets"): (["get"], ["mlpipeline-minio-artifact"]),
        ("argoproj.io", "workflowtaskresults"): (["create", "patch"], None),
    }


# --- MinIO and MLflow users ------------------------------------------------------------------------


@pytest.mark.parametrize("env", dh.ENVS)
def test_mlflow_uses_a_scoped_minio_user_and_its_admin_login_is_its_own(env):
    """MLflow's pods mount neither MinIO's root keys nor the checkpoint key; they write bucket `mlflow`
    as a user the MinIO users Job creates with a policy on that bucket only; the admin login is a
    Secret only MLflow reads, apart from the pipelines' login."""
    mlflow = by_kind(env, "Deployment")["teacherlm-mlflow"]["spec"]["template"]["spec"]
    mounted = {v["secret"]["secretName"] for v in mlflow["volumes"] if "secret" in v}
    assert mounted == {
        "teacherlm-mlflow-s3",
        "teacherlm-postgres",
        "teacherlm-mlflow-auth",
        "teacherlm-mlflow-admin",
    }
    script = mlflow["containers"][0]["args"][0]
    assert 'AWS_ACCESS_KEY_ID="$(cat /run/secrets/mlflow-s3/AWS_ACCESS_KEY_ID)"' in script
    assert "store.create_user(user, password, is_admin=False)" in script
    assert "store.update_user(user, password, False)" in script
    readers = {
        where
        for doc in docs(env)
        for where, pod in dh.pod_specs(doc)
        if "teacherlm-mlflow-admin" in json.dumps(pod)
    }
    assert readers == {"Deployment/teacherlm-mlflow"}
    for where, executor in spec_executors():
        assert "teacherlm-mlflow-admin" not in json.dumps(executor), where
    job = by_kind(env, "Job")["teacherlm-minio-users"]
    job_script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    for command in (
        "mc mb --ignore-existing teacherlm/teacherlm teacherlm/mlflow",
        "mc admin policy create teacherlm teacherlm-mlflow /policies/teacherlm-mlflow.json",
        'mc admin policy attach teacherlm teacherlm-mlflow --user "$MLFLOW_ACCESS_KEY"',
    ):
        assert command in job_script
    policy = json.loads(
        by_kind(env, "ConfigMap")["teacherlm-minio-policies"]["data"]["teacherlm-mlflow.json"]
    )
    assert {r for st in policy["Statement"] for r in st["Resource"]} == {
        "arn:aws:s3:::mlflow",
        "arn:aws:s3:::mlflow/*",
    }
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert all(a.startswith("s3:") and "*" not in a for a in actions) and "s3:CreateBucket" not in actions


# --- network policies ------------------------------------------------------------------------------


def _matches(selector: dict, labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _peer_admits(rules: list[dict], side: str, labels: dict[str, str], port: int) -> bool:
    """Whether any rule (``from`` or ``to`` peers, ports) admits a pod of this namespace on ``port``."""
    for rule in rules:
        peers = rule.get(side)
        in_peer = peers is None or any(
            "podSelector" in p
            and "namespaceSelector" not in p
            and "ipBlock" not in p
            and _matches(p["podSelector"], labels)
            for p in peers
        )
        in_port = not rule.get("ports") or any(p.get("port") in (None, port) for p in rule["ports"])
        if in_peer and in_port:
            return True
    return False


def connects(policies: list[dict], src: dict[str, str], dst: dict[str, str], port: int) -> bool:
    """Whether pod ``src`` may open a TCP connection to pod ``dst``:``port`` in one namespace, by the
    NetworkPolicy rules (a pod no policy of a type selects is open in that direction)."""
    for direction, pod, peer, side in (("Egress", src, dst, "to"), ("Ingress", dst, src, "from")):
        mine = [
            p["spec"]
            for p in policies
            if direction in p["spec"]["policyTypes"] and _matches(p["spec"]["podSelector"], pod)
        ]
        rules = [r for spec in mine for r in spec.get(direction.lower(), [])]
        if mine and not _peer_admits(rules, side, peer, port):
            return False
    return True


def _server_labels(env: str, name: str) -> dict[str, str]:
    for doc in docs(env):
        if doc["kind"] in ("StatefulSet", "Deployment") and doc["metadata"]["name"] == name:
            return doc["spec"]["template"]["metadata"]["labels"]
    raise AssertionError(name)


@pytest.mark.parametrize("env", dh.ENVS)
def test_network_policies_select_the_pods_that_exist_and_open_only_what_they_use(env):
    policies = list(by_kind(env, "NetworkPolicy").values())
    node, _ = runtime_pod(env)
    other_job_node = node | {"jobset.sigs.k8s.io/jobset-name": "tlm-teacher-89abcdef-t"}
    steps = {where: ex.get("podMetadata", {}).get("labels", {}) for where, ex in spec_executors()}
    assert steps and all(labels.get("teacherlm.io/pipeline-step") == "true" for labels in steps.values())
    minio, mlflow = _server_labels(env, "teacherlm-minio"), _server_labels(env, "teacherlm-mlflow")
    postgres = _server_labels(env, "teacherlm-postgres")
    by_name = {p["metadata"]["name"]: p for p in policies}
    assert _matches(by_name["teacherlm-train-nodes"]["spec"]["podSelector"], node)
    for where, labels in steps.items():
        assert _matches(by_name["teacherlm-pipeline-steps"]["spec"]["podSelector"], labels), where
        assert not _matches(by_name["teacherlm-train-nodes"]["spec"]["podSelector"], labels), where
    assert not _matches(by_name["teacherlm-pipeline-steps"]["spec"]["podSelector"], node)
    # Each policy selects some pod that exists (a label nobody sets would protect nothing).
    existing = [node, *steps.values()] + [
        doc["spec"]["template"]["metadata"]["labels"]
        if "template" in doc["spec"]
        else doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        for doc in docs(env)
        if doc["kind"] in ("StatefulSet", "Deployment", "Job", "CronJob")
    ]
    for policy in policies:
        assert any(_matches(policy["spec"]["podSelector"], labels) for labels in existing), policy[
            "metadata"
        ]["name"]

    step = next(iter(steps.values()))
    # torchrun's rendezvous and NCCL between the nodes; tracking and storage; nothing else.
    assert connects(policies, node, other_job_node, 29500) and connects(policies, node, node, 41234)
    assert connects(policies, node, minio, 9000) and connects(policies, node, mlflow, 5000)
    assert connects(policies, step, minio, 9000) and connects(policies, step, mlflow, 5000)
    assert not connects(policies, step, node, 29500)  # a pipeline step cannot join a rendezvous
    assert not connects(policies, node, step, 8080) and not connects(policies, node, postgres, 5432)
    assert not connects(policies, step, postgres, 5432) and not connects(policies, step, step, 8080)
    assert not connects(policies, mlflow, node, 29500)
    stranger = {"app": "notebook"}  # any other pod of the namespace
    assert not connects(policies, stranger, node, 29500) and not connects(policies, stranger, mlflow, 5000)
    # The pipeline steps reach Kubeflow Pipelines and the API server; TrainJob nodes call neither.
    step_egress = by_name["teacherlm-pipeline-steps"]["spec"]["egress"]
    kubeflow = [
        r
        for r in step_egress
        if any(
            p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            == "kubeflow"
            for p in r.get("to", [])
        )
    ]
    assert {p["port"] for r in kubeflow for p in r["ports"]} >= {8887, 8888}
    assert {p["port"] for r in step_egress if "to" not in r for p in r["ports"]} == {443, 6443}
    # TrainJob nodes call no API; HTTPS (the Hugging Face Hub) only to public addresses, never into the cluster.
    node_egress = by_name["teacherlm-train-nodes"]["spec"]["egress"]
    assert not {p["port"] for r in node_egress for p in r.get("ports", [])} & {6443, 8887, 8888}
    (https,) = [r for r in node_egress if any(p["port"] == 443 for p in r.get("ports", []))]
    (block,) = [p["ipBlock"] for p in https["to"]]
    assert block["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(block["except"])
