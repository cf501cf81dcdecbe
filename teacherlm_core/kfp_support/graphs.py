"""Pipelines as module-level functions, each parameter list written once (compile-time).

A pipeline is a plain function of ``pipelines/<name>/pipeline.py`` under :func:`pipeline`; its
tasks take their node pools and policies from the :class:`~.placement.Placement` that
:func:`~.placement.placed` makes active. KFP builds a pipeline's graph when it is decorated, and
not inside another pipeline's, so a :class:`Graph` builds itself (and first the graphs it
``uses``) once per placement, on demand: calling it inside a pipeline adds it as a nested graph.

:func:`published` turns a graph with artifact inputs (what a pipeline nests) into the pipeline a
user runs: the same parameters, each artifact input a URI parameter imported by
``dsl.importer``; its signature is derived, so the list is not written twice.

    @pipeline("augment-dataset", "Fan out over shards, augment each, merge.", teacher="The trained teacher.")
    def augment_dataset(teacher: Input[Model], num_shards: int = P.num_shards) -> Dataset: ...

    augment = published(augment_dataset, "teacherlm-augment", "Augment a dataset ...", display="augment")
    with placed(Placement(queue="team-a")):
        component = augment.component()  # what kfp's Compiler compiles

A new pipeline: a module ``pipelines/<name>/pipeline.py`` with its function under
:func:`pipeline` (every parameter defined once in
:class:`~teacherlm_core.stages.params.PipelineParams`, used as ``x: int = P.x``; a graph it nests
listed in ``uses=``), its name added to :data:`~teacherlm_core.kfp_support.specs.NAMES` and its
graph to ``teacherlm_pipelines.compile.PIPELINES``; then ``teacherlm pipeline compile`` writes
``pipelines/<name>/<name>.yaml`` and ``teacherlm pipeline run <name>`` runs it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_args

from kfp import dsl

from ..stages.params import P, documented
from .placement import Placement, active_placement

__all__ = ["Graph", "pipeline", "published"]


class Graph:
    """A pipeline function with its KFP name and description, built per placement on first use.

    Calling it inside another pipeline's function adds it there as a nested graph (a sub-DAG in
    the UI) and returns its task.
    """

    def __init__(self, fn: Callable[..., Any], name: str, description: str, uses: tuple[Graph, ...] = ()):
        self.fn, self.name, self.description, self.uses = fn, name, description, uses
        self._built: dict[Placement, Any] = {}

    def component(self) -> Any:
        """The ``GraphComponent`` under the active placement (kfp's ``@dsl.pipeline`` of :attr:`fn`).

        Raises:
            RuntimeError: first asked for inside another pipeline's function (it is missing from
                that pipeline's ``uses``).
        """
        where = active_placement()
        if where not in self._built:
            from kfp.dsl import pipeline_context

            for graph in self.uses:
                graph.component()
            if pipeline_context.Pipeline.get_default_pipeline() is not None:
                raise RuntimeError(f"pipeline {self.name!r} is nested, but not in its parent's uses=(...)")
            self._built[where] = dsl.pipeline(name=self.name, description=self.description)(self.fn)
        return self._built[where]

    def __call__(self, **arguments: Any) -> Any:
        return self.component()(**arguments)

    def __repr__(self) -> str:
        return f"Graph({self.name!r})"


def pipeline(
    name: str, description: str, *, uses: tuple[Graph, ...] = (), **artifacts: str
) -> Callable[[Callable[..., Any]], Graph]:
    """Decorate a module-level pipeline function: KFP's ``name`` and ``description``, the graphs it
    nests (``uses``), and the description of each artifact input (``artifacts``); parameters are
    described by :class:`~teacherlm_core.stages.params.PipelineParams` (:func:`documented`).

    Raises:
        TypeError: a parameter that is neither in ``PipelineParams`` nor described in ``artifacts``.
    """

    def decorate(fn: Callable[..., Any]) -> Graph:
        return Graph(documented(description, **artifacts)(fn), name, description, uses)

    return decorate


def published(graph: Graph, name: str, description: str, *, display: str) -> Graph:
    """``graph`` as a pipeline a user runs: each artifact input ``X`` becomes the URI parameter ``X``
    (type ``str``, default and description ``P.X``) that a ``dsl.importer`` task reads; the other
    parameters pass through unchanged. ``display`` names the nested graph in the UI.

    Raises:
        KeyError: an artifact input with no URI parameter of that name in ``PipelineParams``.
    """
    signature = inspect.signature(graph.fn)
    artifacts: dict[str, Any] = {}
    parameters = []
    for param in signature.parameters.values():
        if (artifact_class := _artifact_class(param.annotation)) is not None:
            artifacts[param.name] = artifact_class
            default = getattr(P, param.name)
            if not isinstance(default, str):
                raise KeyError(f"{param.name}: PipelineParams has no URI parameter of that name")
            param = param.replace(annotation=str, default=default)
        parameters.append(param)

    def run(*values: Any) -> Any:
        # kfp calls a pipeline function with one channel per parameter, in signature order.
        arguments: dict[str, Any] = dict(zip(signature.parameters, values, strict=True))
        for input_name, artifact_class in artifacts.items():
            imported = dsl.importer(
                artifact_uri=arguments[input_name], artifact_class=artifact_class, reimport=False
            )
            imported.set_display_name(f"import {input_name.replace('_', ' ')}")
            arguments[input_name] = imported.output
        return graph(**arguments).set_display_name(display).output

    run.__name__ = run.__qualname__ = name.replace("-", "_")
    run.__module__ = graph.fn.__module__
    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": signature.return_annotation}
    return pipeline(name, description, uses=(graph,))(run)


def _artifact_class(annotation: Any) -> type | None:
    """``Dataset`` for ``Input[Dataset]`` (kfp's ``Annotated[Dataset, InputAnnotation]``), else None."""
    args: tuple[Any, ...] = get_args(annotation)
    if args and isinstance(args[0], type) and issubclass(args[0], dsl.Artifact):
        return args[0]
    return None
