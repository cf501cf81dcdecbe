"""The teacherlm pipelines: ``<name>/pipeline.py`` beside its compiled spec ``<name>/<name>.yaml``.

Installed as ``teacherlm_pipelines`` (a user's own ``pipelines`` package cannot shadow it). Each
``pipeline.py`` defines its pipeline as a module-level function
(:func:`teacherlm_core.kfp_support.graphs.pipeline`); ``teacherlm pipeline compile`` writes the
specs (:mod:`teacherlm_pipelines.compile`), which ship inside this package, and
``tests/pipelines/`` checks that the committed ones match. Parameters: one definition each, in
:mod:`teacherlm_core.stages.params`. Placement (node pools, accelerators, retries, fan-out
width) comes from :mod:`teacherlm_core.kfp_support.placement`; the names of the pipelines from
:data:`teacherlm_core.kfp_support.specs.NAMES`.
"""
