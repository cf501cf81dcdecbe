"""Prod's data and supply chain, on the rendered manifests: MinIO's versioning as the data backup,
a rotated scoped key that stops working, prod's StorageClass set per cluster or refused, and every
image prod runs pinned by digest.

The users Job's shell script runs here for real (/bin/sh) against a stand-in `mc` (tests/fake_mc.py)
that keeps MinIO's state; what only a real MinIO shows is said in docs/operations.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    import deploy_helpers as dh
except ImportError:  # tests/ imported as a package
    from tests import deploy_helpers as dh

pytestmark = pytest.mark.timeout(120)

OPERATIONS = dh.REPO / "docs" / "operations.md"
# What the API server accepts as a StorageClass provisioner (a qualified name, checked lower-cased).
QUALIFIED_NAME = re.compile(
    r"(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?[a-z0-9](?:[-a-z0-9_.]*[a-z0-9])?"
)
DIGEST = re.compile(r"^(?P<name>[^@]+):(?P<tag>[^:@/]+)@sha256:[0-9a-f]{64}$")


def by_kind(env: str, kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in dh.render(env)[1] if d["kind"] == kind}


def images(env: str) -> set[str]:
    return {c["image"] for doc in dh.render(env)[1] for _, pod in dh.pod_specs(doc)
            for c in pod.get("initContainers", []) + pod["containers"]}  # fmt: skip


def users_job_script(env: str) -> str:
    job = by_kind(env, "Job")["teacherlm-minio-users"]
    return job["spec"]["template"]["spec"]["containers"][0]["args"][0]


# --- MinIO versioning: the data backup -----------------------------------------------------------


@pytest.mark.parametrize("env", dh.ENVS)
def test_minio_keeps_previous_versions_and_pipelines_cannot_erase_them(env):
    script = users_job_script(env)
    assert "mc version enable teacherlm/teacherlm" in script
    assert "mc ilm import teacherlm/teacherlm < /policies/teacherlm-lifecycle.json" in script
    data = by_kind(env, "ConfigMap")["teacherlm-minio-policies"]["data"]
    (rule,) = json.loads(data["teacherlm-lifecycle.json"])["Rules"]
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}  # the whole bucket
    assert 7 <= rule["NoncurrentVersionExpiration"]["NoncurrentDays"] <= 365
    assert set(rule) == {"ID", "Status", "Filter", "NoncurrentVersionExpiration"}  # nothing current expires
    # The scoped user deletes objects (a delete marker), never a version, the versioning or the rule.
    actions = {a for st in json.loads(data["teacherlm-pipelines.json"])["Statement"] for a in st["Action"]}
    assert not actions & {"s3:DeleteObjectVersion", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration",
                          "s3:PutObjectRetention", "s3:BypassGovernanceRetention"}  # fmt: skip
    doc = OPERATIONS.read_text()
    for how in ("mc ls --versions", "mc cp --version-id", "--rewind", "NoncurrentDays"):
        assert how in doc, f"docs/operations.md does not say how to restore with {how!r}"


# --- the users Job, run against a stand-in mc ----------------------------------------------------


def run_users_job(
    script: str, root: Path, access: str, secret: str, style: str
) -> subprocess.CompletedProcess:
    """Run the Job's script with its mounted files under ``root`` and the stand-in mc on PATH."""
    secrets = root / "secrets"
    for name, (key, value) in {
        "minio": ("root", "root-secret-value"),
        "pipelines-s3": (access, secret),
        "mlflow-s3": ("mlflow-key", "mlflow-secret-value"),
    }.items():
        (secrets / name).mkdir(parents=True, exist_ok=True)
        (secrets / name / "AWS_ACCESS_KEY_ID").write_text(key)
        (secrets / name / "AWS_SECRET_ACCESS_KEY").write_text(value)
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mc").write_text(f'#!/bin/sh\nexec {sys.executable} {dh.REPO / "tests" / "fake_mc.py"} "$@"\n')
    (bin_dir / "mc").chmod(0o755)
    # the pod's mount points, moved under root (only where a path starts: not inside one already moved)
    mounts = {"run/secrets": secrets, "policies": root / "policies", "tmp": root / "tmp"}
    local = re.sub(r"(?<![\w/.-])/(run/secrets|policies|tmp)/", lambda m: f"{mounts[m[1]]}/", script)
    (root / "tmp").mkdir(exist_ok=True)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_MC_STATE": str(root / "minio.json")}
    if style == "compact":
        env["FAKE_MC_JSON"] = "compact"
    return subprocess.run(["/bin/sh", "-c", local], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("style", ["indented", "compact"])
def test_a_rotated_scoped_key_stops_working_and_nothing_else_changes(tmp_path, style):
    script = users_job_script("prod")
    policies = tmp_path / "policies"
    policies.mkdir()
    for name, text in by_kind("prod", "ConfigMap")["teacherlm-minio-policies"]["data"].items():
        (policies / name).write_text(text)
    state = tmp_path / "minio.json"
    # Someone's own user with another policy, and one in a group: never touched.
    state.write_text(json.dumps({"buckets": {}, "policies": {"readonly": {}}, "users": {
        "alice": {"policies": ["readonly"], "status": "enabled"},
        "ci-bot": {"policies": ["readonly"], "status": "enabled", "groups": ["ci", "ops"]},
    }}))  # fmt: skip

    first = run_users_job(script, tmp_path, "pipelines-key-1", "secret-one-1234", style)
    assert first.returncode == 0, first.stderr
    minio = json.loads(state.read_text())
    assert minio["users"]["pipelines-key-1"]["policies"] == ["teacherlm-pipelines"]
    assert minio["buckets"]["teacherlm"]["versioning"] is True
    assert minio["buckets"]["teacherlm"]["lifecycle"]["Rules"][0]["NoncurrentVersionExpiration"]

    again = run_users_job(script, tmp_path, "pipelines-key-1", "secret-one-1234", style)  # every sync runs it
    assert again.returncode == 0, again.stderr
    assert set(json.loads(state.read_text())["users"]) == {"alice", "ci-bot", "pipelines-key-1", "mlflow-key"}

    rotated = run_users_job(script, tmp_path, "pipelines-key-2", "secret-two-5678", style)
    assert rotated.returncode == 0, rotated.stderr
    users = json.loads(state.read_text())["users"]
    assert set(users) == {"alice", "ci-bot", "pipelines-key-2", "mlflow-key"}, "the previous key still works"
    assert users["mlflow-key"]["policies"] == ["teacherlm-mlflow"]  # MLflow's own user is not a previous key
    assert users["pipelines-key-2"]["policies"] == ["teacherlm-pipelines"]
    assert "removed a previous key of the scoped user" in rotated.stdout
    assert "secret-one" not in rotated.stdout + rotated.stderr


# --- prod's StorageClass -------------------------------------------------------------------------


def test_prod_storage_class_is_set_per_cluster_or_refused_before_anything_is_applied(tmp_path):
    """The shipped provisioner is no valid name, so the API server refuses the class (first wave:
    nothing else applied); the documented per-cluster patch gives a valid, retained class."""
    (cls,) = by_kind("prod", "StorageClass").values()
    assert not QUALIFIED_NAME.fullmatch(cls["provisioner"].lower()), "a guessed provisioner would be applied"
    waves = {d["kind"]: int(d["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", 0))
             for d in dh.render("prod")[1]}  # fmt: skip
    assert waves.pop("StorageClass") < min(waves.values())
    # The patch docs/operations.md shows, on top of envs/prod, as a cluster's deployment adds it.
    doc = OPERATIONS.read_text()
    section = doc[doc.index("## Prod storage") :]
    patch = re.search(r"```yaml\n(.*?)```", section, re.S)[1]
    overlay = tmp_path / "cluster"
    overlay.mkdir()
    kustomization = yaml.safe_load(patch)
    assert kustomization["patches"][0]["target"] == {"kind": "StorageClass", "name": "teacherlm-retain"}
    kustomization["resources"] = [os.path.relpath(dh.MANIFESTS / "envs" / "prod", overlay)]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    proc = dh.run_tool([dh.find_tool("kubectl"), "kustomize", str(overlay)])
    assert proc.returncode == 0, proc.stderr
    (patched,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "StorageClass"]
    assert QUALIFIED_NAME.fullmatch(patched["provisioner"].lower()) and patched["reclaimPolicy"] == "Retain"


# --- image digests -------------------------------------------------------------------------------


def test_prod_runs_every_third_party_image_by_digest():
    ours = dh.IMAGE_REPOSITORY.format(name="")
    theirs = {i for i in images("prod") if not i.startswith(ours)}
    assert theirs
    for image in theirs:
        assert DIGEST.match(image), f"{image}: prod must pin it by digest (scripts/pin_images.py)"


def test_pinning_at_release_leaves_no_mutable_tag_in_prod(tmp_path):
    """scripts/pin_images.py (with a stand-in resolver for the registry) pins every prod image, ours
    included, keeping each tag; --check fails before and passes after."""
    manifests = tmp_path / "manifests"
    shutil.copytree(dh.MANIFESTS, manifests)
    pin = [sys.executable, str(dh.REPO / "scripts" / "pin_images.py"), "--manifests", str(manifests)]
    before = dh.run_tool([*pin, "--check"])
    ours = dh.IMAGE_REPOSITORY.format(name="")
    unpinned = {line.removeprefix("not pinned by digest: ") for line in before.stderr.splitlines()}
    assert before.returncode == 1 and unpinned and all(i.startswith(ours) for i in unpinned), before.stderr
    resolver = tmp_path / "digest"
    resolver.write_text(
        f"#!/bin/sh\nprintf '%s' \"$1\" | {shutil.which('sha256sum')} | sed 's/^/sha256:/; s/ .*//'\n"
    )
    resolver.chmod(0o755)
    env = dh.tool_env() | {"TEACHERLM_DIGEST_CMD": str(resolver)}
    written = subprocess.run(pin, capture_output=True, text=True, env=env, timeout=120)
    assert written.returncode == 0, written.stderr
    after = subprocess.run([*pin, "--check"], capture_output=True, text=True, env=env, timeout=120)
    assert after.returncode == 0, after.stderr
    rendered = dh.run_tool([dh.find_tool("kubectl"), "kustomize", str(manifests / "envs" / "prod")]).stdout
    found = set(re.findall(r"image: (\S+)", rendered))
    version = dh.package_version()
    for image in found:
        match = DIGEST.match(image)
        assert match, image
        if image.startswith(ours):
            assert match["tag"] == version, image
    # third-party pins are re-resolved from their tags, and the repo's own file has the same form
    pinned = yaml.safe_load_all((manifests / "envs" / "prod" / "images.yaml").read_text())
    shipped = yaml.safe_load_all((dh.MANIFESTS / "envs" / "prod" / "images.yaml").read_text())
    assert {d["imageTag"]["name"] for d in shipped} < {d["imageTag"]["name"] for d in pinned}
