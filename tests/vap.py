"""A ValidatingAdmissionPolicy evaluated as the API server does, with cel-python (``celpy``).

``denials(policy, obj)`` runs the policy's ``variables`` in order, then each validation, on ``obj``
as ``object``; it returns the messages of the validations that fail (``[]``: admitted). An
expression that errors counts as a failure (teacherlm's policies are ``failurePolicy: Fail``).
Used by tests/deploy/test_admission.py and by the stand-in Kubernetes server (tests/fake_k8s.py).
CEL here is the standard language; a real API server also type-checks the expressions against the
CRD's schema, which tests/deploy/test_admission.py approximates by resolving every field path.
"""

from __future__ import annotations

from typing import Any

__all__ = ["denials"]


def denials(policy: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    import celpy
    from celpy import celtypes

    env = celpy.Environment()
    activation: dict[str, Any] = {"object": celpy.json_to_cel(obj)}
    variables: dict[Any, Any] = {}
    for var in policy["spec"].get("variables", []):
        program = env.program(env.compile(var["expression"]))
        variables[celtypes.StringType(var["name"])] = program.evaluate(
            activation | {"variables": celtypes.MapType(variables)}
        )
    activation["variables"] = celtypes.MapType(variables)
    failed = []
    for rule in policy["spec"]["validations"]:
        result = env.program(env.compile(rule["expression"])).evaluate(activation)
        if not isinstance(result, celtypes.BoolType) or not bool(result):
            failed.append(rule["message"])
    return failed
