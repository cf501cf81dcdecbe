"""One CLI grammar (issue 26 item 6): global options anywhere, --no-track wherever a command
tracks, the same option name for the same thing on every subcommand, a dry run without a teacher."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from teacherlm_core.cli import _register, hoist_global_flags


def cli(*args, env_extra=None, tmp_path=None, timeout=600):
    import os

    env = os.environ | {"TEACHERLM_WORKDIR": str(tmp_path / "work")} | (env_extra or {})
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "teacherlm_core", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env=env,
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["evaluate", "--model", "m", "--debug"], ["--debug", "evaluate", "--model", "m"]),
        (
            ["augment", "plan", "--data", "d", "--no-track", "-v"],
            ["--no-track", "-v", "augment", "plan", "--data", "d"],
        ),
        # train student declares --track/--no-track itself (it overrides the config): left to it
        (["train", "student", "--no-track", "--debug"], ["--debug", "train", "student", "--no-track"]),
        # nothing after -- moves: it is the command a TrainJob runs
        (
            ["train", "submit", "--nnodes", "2", "--", "python", "x.py", "--debug"],
            ["train", "submit", "--nnodes", "2", "--", "python", "x.py", "--debug"],
        ),
    ],
)
def test_global_flags_are_heard_wherever_they_stand(argv, expected):
    _register()
    assert hoist_global_flags(argv) == expected


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "task": "t", "question": "q", "choices": ["a", "b"], "answer": "z"}\n')
    args = [
        "evaluate",
        "--model",
        "m",
        "--data",
        str(bad),
        "--output",
        str(tmp_path / "r.json"),
        "--no-track",
    ]
    plain = cli(*args, tmp_path=tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "bad.jsonl:1" in plain.stderr
    debug = cli(*args, "--debug", tmp_path=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr, debug.stderr


@pytest.mark.integration  # a real CLI process, engine or training run: not the fast tier
def test_no_track_on_a_command_without_its_own_flag_makes_no_store(tmp_path):
    """`data build` logs a stage run to MLflow; --no-track after it opens no store at all."""
    res = cli(
        "data", "build", "--output", str(tmp_path / "d"), "--per-task", "4", "--no-track", tmp_path=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "d" / "manifest.json").is_file()
    assert not (tmp_path / "work").exists()  # not even an empty work dir (a new user's trial found one)
    tracked = cli("data", "build", "--output", str(tmp_path / "d2"), "--per-task", "4", tmp_path=tmp_path)
    assert tracked.returncode == 0 and (tmp_path / "work" / "mlflow.db").exists()  # the control


def test_augment_dry_run_needs_no_teacher_and_takes_data_like_its_steps(tmp_path):
    from teacherlm_core.data import build_builtin

    build_builtin(tmp_path / "data", ["claims"], per_task=6, seed=0)
    res = cli(
        "augment",
        "--data",
        str(tmp_path / "data"),
        "--output",
        str(tmp_path / "o"),
        "--dry-run",
        "--no-track",
        tmp_path=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    train = (tmp_path / "data" / "train.jsonl").read_text().splitlines()
    assert manifest["counts"]["input"] == manifest["counts"]["output"] == len(train)
    real = cli(
        "augment",
        "--data",
        str(tmp_path / "data"),
        "--output",
        str(tmp_path / "o2"),
        "--no-track",
        tmp_path=tmp_path,
    )
    assert real.returncode != 0 and "--teacher" in real.stderr  # a real run still needs one


def test_bad_eval_reports_and_model_paths_are_one_line_each(tmp_path):
    """A new user's trial: `compare` printed a traceback (exit 1) for a missing, empty or non-JSON
    report, and a missing model directory was called a bad hub id, twice."""
    (tmp_path / "empty.json").write_text("{}")
    (tmp_path / "text.json").write_text("not json")
    cases = [
        (["compare", str(tmp_path / "nope.json"), "--output", str(tmp_path / "c")], "nope.json: cannot read"),
        (
            ["compare", str(tmp_path / "empty.json"), "--output", str(tmp_path / "c")],
            "empty.json: field 'model'",
        ),
        (
            ["compare", str(tmp_path / "text.json"), "--output", str(tmp_path / "c")],
            "text.json: not an eval report",
        ),
    ]
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "1", "task": "t", "question": "q", "choices": ["a", "b"], "answer": "a"}\n')
    missing = tmp_path / "no-model"
    cases.append(
        (
            ["evaluate", "--model", str(missing), "--data", str(data), "--output", str(tmp_path / "r.json")],
            f"cannot load model '{missing}': no such directory",
        )
    )
    for args, message in cases:
        res = cli(*args, "--no-track", tmp_path=tmp_path)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr, (args, res.stderr)
        assert res.stderr.count("error:") == 1 and "Repo id" not in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["data", "build", "--per-task", "x"], "error: Invalid value for '--per-task'"),
        (["nosuch"], "error: No such command 'nosuch'"),
        (["augment", "--nosuch"], "error: No such option: --nosuch"),
        (["evaluate"], "error: Missing option '--model'"),
    ],
)
def test_a_usage_error_is_one_line_like_every_other_error(tmp_path, args, said):
    """A new user's trial: errors found while reading the options came as a 5-6 line box, the others
    as one line; now every error is one 'error:' line naming the command's --help, exit 2."""
    res = cli(*args, tmp_path=tmp_path)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [res.stderr.strip()] and res.stderr.startswith(said), res.stderr
    assert "--help')" in res.stderr and "Traceback" not in res.stderr


def _commands(command, path=("teacherlm",)):
    """Every leaf command under ``command`` with its path (typer ships its own click: duck typing)."""
    subs = getattr(command, "commands", None)
    if not subs:
        yield " ".join(path), command
        return
    for name, sub in subs.items():
        yield from _commands(sub, (*path, name))


def test_the_same_thing_has_the_same_short_option_on_every_command():
    """A new user's trial: -o and -i worked on `data build` but not on `augment` or `evaluate`."""
    import typer

    from teacherlm_core.cli import app

    _register()
    short = {"--output": "-o", "--data": "-i"}
    missing = []
    for path, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            for long, letter in short.items():
                if long in param.opts and letter not in param.opts:
                    missing.append(f"{path} {long}")
        spellings = [o for p in command.params for o in (*p.opts, *p.secondary_opts)]
        missing += [f"{path}: {o} twice" for o in set(spellings) if spellings.count(o) > 1]
    assert not missing, missing


def test_a_bar_of_unknown_length_ends_complete_and_one_that_counted_nothing_goes(monkeypatch):
    """A new user's trial: `augment`'s plan bar stayed at 0/? after success, and above errors."""
    import io
    from contextlib import nullcontext

    from rich.console import Console

    from teacherlm_core.cli import progress

    def final(work: str) -> str:  # the bar as it stays on screen (a non-terminal gets only that)
        out = io.StringIO()
        monkeypatch.setattr(progress, "console", Console(file=out, force_terminal=False, width=120))
        failing = pytest.raises(RuntimeError) if work == "fail" else nullcontext()
        with failing, progress.progress_bar("plan", None) as advance:
            if work == "count":
                advance(3)
            if work == "fail":
                advance(2)
                raise RuntimeError("bad input")
        return out.getvalue()

    assert "3/3" in final("count")
    assert final("none").strip() == "" and final("fail").strip() == ""


@pytest.mark.integration  # real CLI processes
def test_a_first_run_on_a_cpu_machine_prints_no_library_chatter(tmp_path):
    """From the demo's first lines: DeepSpeed announced the CPU machine as a WARNING, and MLflow its
    new local store at INFO; neither is news to a user (with --verbose both still show)."""
    built = cli("tiny-model", str(tmp_path / "m"), tmp_path=tmp_path)
    data = cli("data", "build", "--output", str(tmp_path / "d"), "--per-task", "3", tmp_path=tmp_path)
    assert built.returncode == data.returncode == 0, built.stderr + data.stderr
    assert (tmp_path / "work" / "mlflow.db").exists()  # the store was made, quietly
    assert "Setting accelerator to CPU" not in built.stderr
    assert "Creating initial MLflow database tables" not in data.stderr
