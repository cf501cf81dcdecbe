"""Retraining the teacher between STaR rounds (``teacherlm train teacher`` in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TeacherLMError
from .config import KEPT, TrainFn

__all__ = ["subprocess_train_fn"]


def _train_config(config: str | Path) -> tuple[Path, dict[str, Any]]:
    """Find the teacher config (a file, or a name shipped with the recipe) and read it."""
    import yaml

    path = Path(config)
    if not path.is_file():
        try:
            from .train.config import shipped_config_path

            path = shipped_config_path(str(config))
        except ImportError:
            pass
    if not path.is_file():
        raise ConfigError("--train-between-rounds", [f"{config}: no such config file"])
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise ConfigError(
            str(path), ["stages: a teacher config needs at least one stage (STaR sets its data)"]
        )
    return path, raw


def _trained_model(out: Path) -> str | None:
    """The retrained teacher in a recipe output: ``out`` itself, or from ``out/stages.json`` the
    chain-of-thought specialist if there is one, else the last stage."""
    import json

    if (out / "config.json").is_file():
        return str(out)
    if not (out / "stages.json").is_file():
        return None
    stages = json.loads((out / "stages.json").read_text(encoding="utf-8"))
    cot = [s for s in stages if s["stage"].endswith("chain-of-thought")]
    return (cot or stages)[-1]["output"] if stages else None


def subprocess_train_fn(config: str | Path, command: Sequence[str] | None = None) -> TrainFn:
    """A ``train_fn`` that runs ``teacherlm train teacher --config ROUND_CONFIG --output DIR``.

    ``ROUND_CONFIG`` (written to ``KEPT_DIR/teacher.yaml``) is ``config`` with the first stage's
    ``data`` set to the kept set, ``KEPT_DIR/train.jsonl``; ``DIR`` is ``KEPT_DIR/model``. The
    model path returned is ``DIR`` if it holds a model, else the stage :func:`_trained_model` picks
    from ``DIR/stages.json``. Where the next round starts from (the base model, as in STaR, or the
    last teacher) is the config's ``model``.

    Checks now, before any generation, that the config is readable and the command exists;
    raises :class:`TeacherLMError` when training is unavailable.
    """
    import yaml

    from . import config as star_config

    command = tuple(command or star_config.TRAIN_COMMAND)  # read now: a test may point it elsewhere
    path, raw = _train_config(config)
    shown = " ".join(command[2:] if command[:1] == (sys.executable,) else command)
    try:
        probe = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=300)
    except OSError as exc:
        probe = subprocess.CompletedProcess(command, 127, "", str(exc))
    if probe.returncode != 0:
        lines = (probe.stderr or probe.stdout).splitlines()
        why = next(
            (ln.strip(" │╭╮╰╯─") for ln in reversed(lines) if any(c.isalnum() for c in ln)), "no output"
        )
        raise TeacherLMError(
            f"training between rounds is unavailable: `{shown}` is not in this installation ({why}); "
            "run STaR without --train-between-rounds"
        )

    def train(kept_dir: Path, round_: int) -> str:
        kept_dir, out = Path(kept_dir).resolve(), Path(kept_dir).resolve() / "model"
        stages = [dict(raw["stages"][0], data=str(kept_dir / KEPT)), *raw["stages"][1:]]
        round_config = kept_dir / "teacher.yaml"
        header = f"# STaR round {round_}: {path} with stages.0.data set to the kept set\n"
        round_config.write_text(
            header + yaml.safe_dump(raw | {"output": str(out), "stages": stages}, sort_keys=False)
        )
        done = subprocess.run([*command, "--config", str(round_config), "--output", str(out)])
        if done.returncode != 0:
            raise TeacherLMError(f"retraining after round {round_} failed (exit {done.returncode}): {shown}")
        model = _trained_model(out)
        if model is None:
            raise TeacherLMError(f"retraining after round {round_} left no model (nor stages.json) in {out}")
        return model

    return train
