"""Everything Kubeflow-specific, in one place (named so as not to shadow the ``kfp`` SDK).

| module | what |
|---|---|
| :mod:`.images` | the container image of each kind of stage, tagged with the package version |
| :mod:`.run_id` | the KFP run id a task runs under (an environment variable, never an input) |
| :mod:`.specs` | the compiled specs shipped in the ``pipelines`` package: find, load, typed parameters |
| :mod:`.placement` | where each kind of task runs: node pools, accelerators, retries, fan-out width (compile-time) |
| :mod:`.compile` | compile ``pipelines/<name>/pipeline.py`` into ``pipelines/<name>/<name>.yaml`` |
| :mod:`.client` | publish the specs as pipeline versions, submit runs (kfp SDK) |
| :mod:`.local` | run a compiled spec with KFP's local runner |

Only :mod:`.placement`, :mod:`.compile` and :mod:`.client` import the ``kfp`` SDK; the rest stay
light so that stages (inside a component's pod) can import them.
"""
