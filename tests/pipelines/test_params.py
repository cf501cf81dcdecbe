"""Every pipeline parameter is defined once and keeps its name from the pipeline UI to the function that uses it.

Follows each parameter of each compiled spec through the DAG (nested pipelines, ``ParallelFor``,
importers) to the components it reaches, and checks those are exactly the stages the parameter
registry (:mod:`teacherlm_core.stages.params`) says use it; then follows each component input
into the stage function of the same name, under the same name, and into that function's body.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import typing
from pathlib import Path

import pytest
import yaml

import teacherlm_components as components
from teacherlm_core.kfp_support.specs import NAMES
from teacherlm_core.stages.params import PipelineParams, used_by
from teacherlm_pipelines.compile import PIPELINES

ROOT = Path(__file__).resolve().parents[2]


def _spec(name: str) -> dict:
    return next(yaml.safe_load_all((ROOT / "pipelines" / name / f"{name}.yaml").read_text()))


def _leaf(ref: str) -> str:
    return re.sub(r"-\d+$", "", ref.removeprefix("comp-")).replace("-", "_")


class Walker:
    """Which executor components a DAG input (parameter or artifact) reaches."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec

    def _component(self, ref: str) -> dict:
        return self.spec["components"][ref]

    def reach(self, comp: dict, name: str, kind: str = "parameters") -> set[str]:
        found: set[str] = set()
        source = "componentInputParameter" if kind == "parameters" else "componentInputArtifact"
        for task_name, task in comp.get("dag", {}).get("tasks", {}).items():
            ref = task["componentRef"]["name"]
            for key, value in task.get("inputs", {}).get(kind, {}).items():
                if value.get(source) == name:
                    found |= self._into(ref, key, kind, task_name, comp)
            # ParallelFor over a parameter list: the loop item is the component's own parameter
            iterator = task.get("parameterIterator", {})
            if iterator.get("items", {}).get("inputParameter") == name:
                found |= self.reach(self._component(ref), iterator["itemInput"])
        return found

    def _into(self, ref: str, key: str, kind: str, task_name: str, parent: dict) -> set[str]:
        comp = self._component(ref)
        if "dag" in comp:
            return self.reach(comp, key, kind)
        executor = self.spec["deploymentSpec"]["executors"][comp["executorLabel"]]
        if "importer" in executor:  # the imported artifact reaches whoever consumes the importer's output
            return self._consumers(parent, task_name)
        return {_leaf(ref)}

    def _consumers(self, comp: dict, producer: str) -> set[str]:
        found: set[str] = set()
        for task_name, task in comp["dag"]["tasks"].items():
            for key, value in task.get("inputs", {}).get("artifacts", {}).items():
                if value.get("taskOutputArtifact", {}).get("producerTask") == producer:
                    found |= self._into(task["componentRef"]["name"], key, "artifacts", task_name, comp)
        return found


def _executors(spec: dict) -> set[str]:
    return {
        _leaf(ref)
        for ref, comp in spec["components"].items()
        if "executorLabel" in comp
        and "importer" not in spec["deploymentSpec"]["executors"][comp["executorLabel"]]
    }


CASES = [(name, param) for name in NAMES for param in _spec(name)["root"]["inputDefinitions"]["parameters"]]


@pytest.mark.parametrize(("pipeline", "param"), CASES, ids=[f"{p}.{q}" for p, q in CASES])
def test_each_pipeline_parameter_reaches_exactly_the_stages_that_use_it(pipeline, param):
    spec = _spec(pipeline)
    assert param in PipelineParams.model_fields, f"{pipeline}.{param} is not in the parameter registry"
    field = PipelineParams.model_fields[param]
    declared = spec["root"]["inputDefinitions"]["parameters"][param]
    assert declared["description"] == field.description
    assert declared.get("defaultValue") == field.default or float(declared["defaultValue"]) == field.default
    reached = Walker(spec).reach(spec["root"], param)
    expected = set(used_by(param)) & _executors(spec)
    assert expected, f"{pipeline}.{param} is used by none of this pipeline's stages"
    assert reached == expected, f"{pipeline}.{param}: reaches {sorted(reached)}, used by {sorted(expected)}"


def test_seed_reaches_training():
    """The documented 'seed of generation and training' reaches both training stages (it once did not)."""
    for pipeline, trainers in (
        ("teacher", {"train_teacher"}),
        ("end_to_end", {"train_teacher", "train_student"}),
    ):
        spec = _spec(pipeline)
        assert trainers <= Walker(spec).reach(spec["root"], "seed"), pipeline


def test_pipeline_signatures_use_the_registry_types():
    for name in NAMES:
        fn = PIPELINES[name].fn
        for pname, p in inspect.signature(fn).parameters.items():
            assert typing.get_type_hints(fn)[pname] is PipelineParams.model_fields[pname].annotation, (
                f"{name}.{pname}"
            )
            assert p.default == getattr(PipelineParams(), pname), f"{name}.{pname}"


@pytest.mark.parametrize("name", components.__all__)
def test_component_inputs_reach_the_stage_under_the_same_name(name):
    component = getattr(components, name)
    stage = getattr(importlib.import_module(f"teacherlm_core.stages.{name}"), name)
    tree = ast.parse(inspect.getsource(component.python_func))
    (call,) = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]
    bound = inspect.signature(stage).bind(
        *[ast.unparse(a) for a in call.args], **{k.arg: ast.unparse(k.value) for k in call.keywords}
    )
    params = {
        k
        for k, v in (component.component_spec.inputs or {}).items()  # train_cleanup takes none
        if v.type in ("String", "Integer", "Float", "Boolean")
    }
    params = {k for k in params if not k.startswith("pipelinechannel")}
    for param in params:
        assert bound.arguments.get(param) == param, (
            f"{name}: input {param} reaches the stage as {bound.arguments}"
        )
        body = ast.parse(inspect.getsource(stage)).body[0].body[1:]  # after the docstring
        used = {n.id for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Name)}
        assert param in used, f"stage {name} never uses {param}"


@pytest.mark.parametrize("name", components.__all__)
def test_stage_defaults_are_the_registry_defaults(name):
    stage = getattr(importlib.import_module(f"teacherlm_core.stages.{name}"), name)
    for pname, p in inspect.signature(stage).parameters.items():
        if pname in PipelineParams.model_fields and p.default is not inspect.Parameter.empty:
            assert p.default == getattr(PipelineParams(), pname), f"{name}.{pname}"
