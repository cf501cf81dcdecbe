"""Shared helpers for the deployment tests (tests/test_images.py, tests/test_manifests.py).

The external tools they drive (kubectl, hadolint, checkov) are installed by
`bash scripts/ci-tools.sh`; a missing tool fails the test that needs it, it never skips it.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO / "images"
MANIFESTS = REPO / "manifests"
ENVS = ("dev", "prod")
IMAGE_NAMES = ("core", "train", "vllm")
IMAGE_REPOSITORY = "ghcr.io/teacherlm/teacherlm-{name}"
# Where scripts/ci-tools.sh links the tools it installs (its TEACHERLM_TOOLS_BIN).
TOOLS_BIN = Path(os.environ.get("TEACHERLM_TOOLS_BIN", "/opt/teacherlm-tools/bin"))

__all__ = [
    "ENVS",
    "IMAGES_DIR",
    "IMAGE_NAMES",
    "IMAGE_REPOSITORY",
    "MANIFESTS",
    "REPO",
    "Instruction",
    "Stage",
    "dockerfile_stages",
    "dockerignore_excludes",
    "find_tool",
    "package_version",
    "pod_specs",
    "render",
    "repo_files",
    "run_tool",
    "tool_env",
]


def package_version() -> str:
    import teacherlm_core

    return teacherlm_core.__version__


# --- external tools ------------------------------------------------------------------------------


def find_tool(name: str) -> str:
    """The path of an external tool: scripts/ci-tools.sh's bin dir first, then PATH."""
    candidate = TOOLS_BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: run `bash scripts/ci-tools.sh` (looked in {TOOLS_BIN} and PATH)"
        )
    return found


def tool_env() -> dict[str, str]:
    """The environment for tools that call others (checkov calls kubectl): tools bin first."""
    env = dict(os.environ)
    env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_tool(args: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=tool_env(), **kwargs
    )


# --- manifests -----------------------------------------------------------------------------------


@functools.cache
def _render_text(env: str) -> str:
    proc = run_tool([find_tool("kubectl"), "kustomize", str(MANIFESTS / "envs" / env)])
    assert proc.returncode == 0, f"kubectl kustomize manifests/envs/{env} failed:\n{proc.stderr}"
    return proc.stdout


def render(env: str) -> tuple[str, list[dict]]:
    """`kubectl kustomize manifests/envs/<env>`: the YAML text and its documents (cached)."""
    text = _render_text(env)
    return text, [doc for doc in yaml.safe_load_all(text) if doc]


def pod_specs(doc: dict) -> list[tuple[str, dict]]:
    """(where, pod spec) for every pod template in a rendered document, custom kinds included."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [(f"{kind}/{doc['metadata']['name']}", spec["template"]["spec"])]
    if kind == "CronJob":
        return [(f"CronJob/{doc['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]["spec"])]
    if kind == "Pod":
        return [(f"Pod/{doc['metadata']['name']}", spec)]
    if kind in ("TrainingRuntime", "ClusterTrainingRuntime"):
        jobs = spec["template"]["spec"]["replicatedJobs"]
        return [
            (f"{kind}/{doc['metadata']['name']}/{job['name']}", job["template"]["spec"]["template"]["spec"])
            for job in jobs
        ]
    return []


# --- repository files ----------------------------------------------------------------------------


def repo_files() -> list[Path]:
    """Files git tracks, plus new files it would track (not ignored): what a commit would hold."""
    proc = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        cwd=REPO,
        check=True,
    )
    names = sorted({name for name in proc.stdout.decode().split("\0") if name})
    return [REPO / name for name in names if (REPO / name).is_file()]


# --- Dockerfiles ---------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest, continuation lines joined
    line: int


@dataclass
class Stage:
    base: str  # the FROM image (or an earlier stage's name)
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def args(self) -> dict[str, str | None]:
        """ARG name -> default (None when it has none) declared in this stage."""
        out: dict[str, str | None] = {}
        for instr in self.all("ARG"):
            name, _, default = instr.args.partition("=")
            out[name.strip()] = default.strip().strip('"') if default else None
        return out


def _logical_lines(text: str):
    start, parts = None, []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if start is None:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        yield start, " ".join(p for p in parts if p)
        start, parts = None, []
    if parts:
        yield start, " ".join(parts)


def dockerfile_stages(path: Path) -> tuple[list[str], list[Stage]]:
    """Global ARGs (before the first FROM) and the build stages of a Dockerfile."""
    global_args: list[str] = []
    stages: list[Stage] = []
    for line, text in _logical_lines(path.read_text()):
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            global_args.append(text)
        else:
            stages[-1].instructions.append(Instruction(keyword, rest.strip(), line))
    return global_args, stages


def _dockerignore_regex(pattern: str) -> re.Pattern:
    pattern = pattern.strip("/")
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def dockerignore_excludes(dockerignore: Path, relpath: str) -> bool:
    """Whether Docker leaves `relpath` out of the build context (last matching rule wins).

    A rule that matches a directory matches everything below it, as in Docker.
    """
    rules = []
    for raw in dockerignore.read_text().splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        negate = raw.startswith("!")
        rules.append((negate, _dockerignore_regex(raw.lstrip("!").strip())))
    parts = relpath.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded
