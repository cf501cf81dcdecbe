"""The KFP components are thin, typed, versioned interfaces, each calling the stage of its own name."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import pytest

import teacherlm_components as components
from teacherlm_core import __version__
from teacherlm_core.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]

COMPONENTS = [getattr(components, name) for name in components.__all__]


@pytest.mark.parametrize("component", COMPONENTS, ids=components.__all__)
def test_component_is_a_thin_versioned_interface(component):
    container = component.component_spec.implementation.container
    assert container.image.startswith("ghcr.io/teacherlm/teacherlm-")
    assert container.image.endswith(f":{__version__}")
    source = inspect.getsource(component.python_func)
    assert "pip install" not in " ".join(container.command)  # install_kfp_package=False, no packages
    tree = ast.parse(source).body[0]
    body = tree.body[1:]  # after the docstring
    code_lines = sum(node.end_lineno - node.lineno + 1 for node in body)
    assert code_lines <= 12, f"{component.name}: {code_lines} lines of code; logic belongs in teacherlm_core"
    imports = [n for n in body if isinstance(n, ast.ImportFrom)]
    stage = component.python_func.__name__
    assert [(i.module, [a.name for a in i.names]) for i in imports] == [
        (f"teacherlm_core.stages.{stage}", [stage])
    ], "one import: the stage of the same name"
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert stage in calls, f"{component.name} never calls its stage"
    for name, spec in (component.component_spec.inputs or {}).items():  # KFP keeps input descriptions only
        assert spec.description, f"{component.name}.{name} has no description"
    documented = tree.body[0].value.value
    for name in component.component_spec.outputs or {}:
        assert name == "Output" or f"{name}: " in documented, f"{component.name}: output {name} undocumented"


def test_component_files_are_short():
    for path in (ROOT / "components").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 55, path


def test_one_component_per_stage_same_name():
    assert sorted(components.__all__) == sorted(STAGES)


@pytest.mark.integration  # a real CLI process, engine or training run: not the fast tier
@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task")  # our images hold this environment
def test_a_component_runs_with_the_local_runner(tmp_path):
    """The same component object runs outside a pipeline (KFP's local runner, this environment)."""
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    task = components.data_build(
        source="", annotated=True, tasks="claims", per_task=3, test_per_task=0, data_seed=0
    )
    data = Path(task.outputs["data"].path)
    assert (data / "train.jsonl").is_file() and json.loads((data / "manifest.json").read_text())["records"][
        "out"
    ] == 3
    assert task.outputs["data"].metadata["out"] == 3
