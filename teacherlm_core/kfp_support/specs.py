"""The compiled pipeline specs and their typed parameters.

The specs ship inside the installed ``pipelines`` package (``pipelines/<name>/<name>.yaml``, beside
the source they were compiled from), so every install (a checkout, the core image, a wheel) finds
them in exactly one place; ``specs=DIR`` reads them from a directory of the same layout instead
(e.g. specs compiled with other placement settings by ``teacherlm pipeline compile --output DIR``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TeacherLMError

NAMES = ("teacher", "augment", "student", "end_to_end")  # pipelines/<name>/pipeline.py + <name>.yaml

__all__ = [
    "NAMES",
    "check_name",
    "coerce_params",
    "find_spec",
    "load_spec",
    "parse_param_args",
    "spec_version",
]


def check_name(name: str) -> str:
    """``name`` when it is one of :data:`NAMES`; else a :class:`ConfigError`."""
    if name not in NAMES:
        raise ConfigError("pipeline", [f"{name!r}: choose one of {', '.join(NAMES)}"])
    return name


def find_spec(name: str, specs: str | Path | None = None) -> Path:
    """The compiled spec of pipeline ``name``: ``<specs>/<name>/<name>.yaml``, default the installed package's."""
    check_name(name)
    root = Path(specs) if specs else Path(str(resources.files("teacherlm_pipelines")))
    path = root / name / f"{name}.yaml"
    if not path.is_file():
        raise TeacherLMError(
            f"no compiled spec of pipeline {name!r} at {path}; run `teacherlm pipeline compile`"
        )
    return path


def load_spec(path: str | Path) -> dict[str, Any]:
    """The pipeline spec (first YAML document) of a compiled file."""
    import yaml

    return next(yaml.safe_load_all(Path(path).read_text()))


def spec_version(spec: dict[str, Any]) -> str | None:
    """The teacherlm version a spec was compiled with (the tag of its teacherlm images)."""
    tags = {
        ex["container"]["image"].rsplit(":", 1)[-1]
        for ex in spec["deploymentSpec"]["executors"].values()
        if "container" in ex and "/teacherlm-" in ex["container"]["image"]
    }
    return tags.pop() if len(tags) == 1 else None


_TYPES = {"NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "STRING": str}


def _parse(value: str, kind: str) -> Any:
    if kind == "BOOLEAN":
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("expected true or false")
        return value.lower() in ("true", "1", "yes")
    if kind in ("LIST", "STRUCT"):
        return json.loads(value)
    return _TYPES[kind](value)


def coerce_params(spec: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
    """``--param k=v`` strings as the pipeline's typed parameters; every problem reported at once."""
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    out, problems = {}, []
    for key, value in params.items():
        if key not in declared:
            problems.append(f"{key}: not a parameter of this pipeline (known: {', '.join(sorted(declared))})")
            continue
        kind = declared[key]["parameterType"]
        try:
            out[key] = _parse(value, kind)
        except (ValueError, KeyError) as exc:
            problems.append(f"{key}={value!r}: not a {kind.lower()} ({exc})")
    if problems:
        raise ConfigError("--param", problems)
    return out


def parse_param_args(args: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a malformed entry is an error."""
    bad = [a for a in args if "=" not in a or not a.split("=", 1)[0]]
    if bad:
        raise ConfigError("--param", [f"{a!r}: expected KEY=VALUE" for a in bad])
    return dict(a.split("=", 1) for a in args)
