"""Kubeflow build-time tooling (named so as not to shadow the ``kfp`` SDK).

Nothing here runs inside a stage's pod: the run id and the images a stage needs are in
:mod:`teacherlm_core.run_context`; the compiler is ``teacherlm_pipelines.compile``, beside what it
compiles.

| module | what |
|---|---|
| :mod:`.specs` | the compiled specs shipped in the ``pipelines`` package: find, load, typed parameters |
| :mod:`.graphs` | pipelines as module-level functions: nesting, per-placement builds, published (URI) forms |
| :mod:`.placement` | where each kind of task runs: node pools, accelerators, retries, fan-out width (compile-time) |
| :mod:`.client` | publish the specs as pipeline versions, submit runs (kfp SDK) |
| :mod:`.local` | run a compiled spec with KFP's local runner |

Only :mod:`.graphs`, :mod:`.placement` and :mod:`.client` import the ``kfp`` SDK at module level.
"""
