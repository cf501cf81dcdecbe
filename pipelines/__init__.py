"""The teacherlm pipelines: ``<name>/pipeline.py`` beside its compiled spec ``<name>/<name>.yaml``.

Each ``pipeline.py`` has ``build(settings) -> pipeline``; ``teacherlm pipeline compile`` writes
the specs and ``tests/test_pipelines.py`` checks that the committed ones match.
"""

NAMES = ("teacher", "augment", "student", "end_to_end")
