"""The installed packages: every package folder installed, under names a user's own package cannot
shadow, and the library below the Kubeflow wing (issue 26 item 1)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {"teacherlm_components": "components", "teacherlm_pipelines": "pipelines"}

pytestmark = pytest.mark.timeout(300)


def test_every_package_folder_is_installed_under_its_mapped_name():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == MAPPED
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("teacherlm_core", *MAPPED.values())
        for p in (ROOT / top).rglob("__init__.py")
    }
    for name, folder in MAPPED.items():  # folder name -> import name
        folders = {name + f[len(folder) :] if f.split(".")[0] == folder else f for f in folders}
    assert sorted(setuptools["packages"]) == sorted(folders)


def test_a_users_own_pipelines_and_components_packages_do_not_shadow_ours(tmp_path):
    """ML projects often have `pipelines/` and `components/` packages of their own; a command run
    from such a project must still find teacherlm's (it once imported the user's)."""
    for name in MAPPED.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user package')\n")
    res = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", "pipeline", "compile", "--output", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
        env=os.environ | {"PYTHONPATH": ""},
    )
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*/*.yaml")) == [
        "augment.yaml",
        "end_to_end.yaml",
        "student.yaml",
        "teacher.yaml",
    ]


def test_the_library_never_imports_the_kubeflow_wing():
    """teacherlm_core sits below components and pipelines: no import of them, and no dynamic import
    that could hide one (the compiler lives in teacherlm_pipelines and imports them by name). Only
    the command line, the top floor, reaches down into the wing (`teacherlm pipeline compile`)."""
    wing = {*MAPPED, *MAPPED.values()}
    found = []
    for path in sorted((ROOT / "teacherlm_core").rglob("*.py")):
        if "cli" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                found += [f"{where} {a.name}" for a in node.names if a.name.split(".")[0] in wing]
            elif (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").split(".")[0] in wing
            ):
                found.append(f"{where} {node.module}")
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("import_module", "__import__"):
                    found.append(f"{where} {name}(...)")
    assert found == []
