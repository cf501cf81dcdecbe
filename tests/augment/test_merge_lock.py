"""One merge of an output at a time, on S3 too, and a merge interrupted anywhere followed by a clean one.

The S3 tests run against the real S3 server the tests start (tests/servers.py), which answers
conditional writes (``If-None-Match``, ``If-Match``) as MinIO does; the interruption tests send
SIGINT and SIGTERM to a real ``teacherlm augment merge`` process.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import free_port

from teacherlm_core import storage
from teacherlm_core.augment import AugmentConfig, augment
from teacherlm_core.augment.lock import LOCK, merge_lock
from teacherlm_core.errors import TeacherLMError

RECORDS = 6000  # enough that a merge takes long enough to be caught at each point below


def s3_out(s3_env, tmp_path, what: str) -> str:
    return f"s3://{s3_env.bucket}/merge-lock/{tmp_path.name}/{what}"


def test_one_merge_of_an_s3_output_at_a_time_and_a_dead_holders_lock_expires(
    s3_env, tmp_path, caplog, monkeypatch
):
    out = s3_out(s3_env, tmp_path, "lock")
    lock = storage.join(out, LOCK)
    with merge_lock(out):
        body = json.loads(storage.read_bytes(lock))
        assert (body["host"], body["pid"]) == (socket.gethostname(), os.getpid())
        busy = rf"another merge of this output is running \(host {socket.gethostname()}, pid {os.getpid()}, lease"
        with pytest.raises(TeacherLMError, match=busy), merge_lock(out):
            pass
    assert not storage.exists(lock), "the lock outlived its merge"
    assert "ignores conditional writes" not in caplog.text  # the server refused the second create

    # A holder elsewhere that stopped renewing: refused within its lease, taken over after it.
    foreign = {"owner": "x", "host": "merge-pod-7", "pid": 7, "lease_seconds": 1}
    storage.write_bytes(lock, json.dumps(foreign).encode())
    with (
        pytest.raises(TeacherLMError, match=r"host merge-pod-7, pid 7, .* expires after 1s"),
        merge_lock(out),
    ):
        pass
    time.sleep(1.5)
    with merge_lock(out):
        assert json.loads(storage.read_bytes(lock))["pid"] == os.getpid()
    assert "took over the merge lock of host merge-pod-7 pid 7" in caplog.text

    # A holder on this host whose process is gone (kill -9): taken over at once.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage.write_bytes(lock, json.dumps(foreign | {"host": socket.gethostname(), "pid": dead.pid,
                                                    "lease_seconds": 600}).encode())  # fmt: skip
    with merge_lock(out):
        pass
    assert not storage.exists(lock)

    # An earlier attempt of this pipeline task (a KFP retry, in another pod): taken over at once;
    # another run's merge is not.
    storage.write_bytes(lock, json.dumps(foreign | {"lease_seconds": 600, "kfp_run": "run-1"}).encode())
    monkeypatch.setenv("TEACHERLM_KFP_RUN_ID", "run-2")
    with pytest.raises(TeacherLMError, match="host merge-pod-7"), merge_lock(out):
        pass
    monkeypatch.setenv("TEACHERLM_KFP_RUN_ID", "run-1")
    with merge_lock(out):
        pass
    assert "an earlier attempt of this pipeline task" in caplog.text
    monkeypatch.delenv("TEACHERLM_KFP_RUN_ID")

    # The holder renews its lease; one that stalled past it and was taken over publishes nothing.
    monkeypatch.setenv("TEACHERLM_MERGE_LEASE_SECONDS", "0.4")
    with merge_lock(out) as check:
        first = storage.store_for(lock).stat(lock)
        time.sleep(0.6)
        assert storage.store_for(lock).stat(lock)[0] != first[0], "the lease was not renewed"
        check()
        storage.write_bytes(lock, json.dumps(foreign | {"owner": "taker"}).encode())
        time.sleep(0.4)
        with pytest.raises(TeacherLMError, match="stalled past its 0s lease and another merge took the lock"):
            check()
    assert json.loads(storage.read_bytes(lock))["owner"] == "taker", "the loser deleted the taker's lock"


# -- interrupted merges -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("merge-input") / "in.jsonl"
    with path.open("w") as fh:
        for i in range(RECORDS):
            rec = {"id": f"q{i:05d}", "task": f"t{i % 3}", "question": f"Which is {i}?",
                   "choices": [str(i), str(i + 1)], "answer": str(i)}  # fmt: skip
            fh.write(json.dumps(rec) + "\n")
    return path


def merge_cli(output: str, env: dict[str, str]) -> subprocess.Popen:
    # MLflow refused at once: tracking off after one probe (creating a local store costs ~10 s a process)
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"} | env
    return subprocess.Popen(
        [sys.executable, "-m", "teacherlm_core", "augment", "merge", "--output", output],
        env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def modified(uri: str) -> float | None:
    """When ``uri`` was last written (S3: by the server's clock, in whole seconds), or None."""
    if storage.is_remote(uri):
        seen = storage.store_for(uri).stat(uri)
        return None if seen is None else seen[1]
    return os.stat(uri).st_mtime if os.path.exists(uri) else None


WATCHED = {"one shard committed": "data/shard-00000-of-00003.parquet", "manifest written": "manifest.json"}


def reached(point: str, out: str, proc: subprocess.Popen, before: dict, tmp: Path) -> bool:
    """Whether the merge ``proc`` has got to ``point`` (``before``: the watched files' times at its start)."""
    if point == "locked":
        lock = storage.join(out, LOCK)
        if storage.is_remote(out):
            return storage.exists(lock) and f'"pid": {proc.pid}' in storage.read_text(lock)
        return os.path.exists(lock) and Path(lock).read_text().strip() == str(proc.pid)
    if point == "writing":  # its temp files hold data
        where = tmp if storage.is_remote(out) else Path(out)
        return any(p.stat().st_size > 0 for p in where.glob(f".merge-{proc.pid}-*"))
    now = modified(storage.join(out, WATCHED[point]))
    return now is not None and (before[point] is None or now > before[point])


def interrupt(out: str, sig: int, point: str, env: dict[str, str], tmp: Path) -> None:
    before = {name: modified(storage.join(out, path)) for name, path in WATCHED.items()}
    proc = merge_cli(out, env)
    deadline = time.monotonic() + 120
    while not reached(point, out, proc, before, tmp):
        assert proc.poll() is None, f"the merge ended before {point!r}: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"the merge never got to {point!r}"
        time.sleep(0.005)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0 or point == "manifest written", (point, stderr[-2000:])  # or it had ended
    assert "Traceback" not in stderr, stderr[-3000:]
    # nothing of it is left in the way of the next merge
    assert not storage.exists(storage.join(out, LOCK)) or not storage.is_remote(out), (point, sig)
    leftovers = tmp.glob(".merge-*") if storage.is_remote(out) else Path(out).glob(".merge-*")
    assert not list(leftovers), (point, sig)


def run_interrupted_then_clean(out: str, big_input: Path, tmp: Path, points) -> None:
    cfg = AugmentConfig(model="planned-teacher", input=str(big_input), output=out, engine="hf", dry_run=True,
                        num_shards=3, part_size=1000)  # fmt: skip
    reference = augment(cfg)
    train = storage.read_bytes(storage.join(out, "train.jsonl"))
    tmp.mkdir(exist_ok=True)
    env = {"TMPDIR": str(tmp), "TEACHERLM_MERGE_LEASE_SECONDS": "600"}  # a lock left behind would block
    for sig, point in points:
        interrupt(out, sig, point, env, tmp)
    proc = merge_cli(out, env)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    manifest = json.loads(storage.read_text(storage.join(out, "manifest.json")))
    assert (
        manifest["counts"] == reference["counts"] == {"input": RECORDS, "output": RECORDS, "quarantined": 0}
    )
    assert manifest["files"] == reference["files"]  # every file the same bytes as the uninterrupted merge's
    assert storage.read_bytes(storage.join(out, "train.jsonl")) == train
    ids = [json.loads(line)["id"] for line in train.splitlines()]
    assert len(ids) == len(set(ids)) == RECORDS  # every record once
    assert not storage.exists(storage.join(out, LOCK)) or not storage.is_remote(out)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_merge_interrupted_anywhere_is_followed_by_a_clean_one(big_input, tmp_path):
    points = [
        (signal.SIGINT, "locked"),
        (signal.SIGTERM, "writing"),
        (signal.SIGINT, "one shard committed"),
        (signal.SIGTERM, "manifest written"),
    ]
    run_interrupted_then_clean(str(tmp_path / "out"), big_input, tmp_path / "tmp", points)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_merge_on_s3_interrupted_anywhere_is_followed_by_a_clean_one_and_a_second_is_refused(
    big_input, tmp_path, s3_env
):
    out = s3_out(s3_env, tmp_path, "out")
    points = [(signal.SIGTERM, "writing"), (signal.SIGINT, "one shard committed")]
    run_interrupted_then_clean(out, big_input, tmp_path / "tmp", points)
    with merge_lock(out):  # another merge holds the output: told so in one line, exit 2
        proc = merge_cli(out, {})
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr
    # one line (besides the "tracking is off" warning of the MLflow this test leaves out)
    (line,) = [x for x in stderr.strip().splitlines() if "tracking is off" not in x]
    assert line.startswith(f"error: {out}: another merge of this output is running (host "), line
