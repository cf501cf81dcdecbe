import pytest

from teacherlm_core import storage
from teacherlm_core.errors import StorageError


def exercise(root: str, tmp_path) -> None:
    """The same contract on every backend."""
    a = storage.join(root, "run", "a.txt")
    storage.write_text(a, "hello")
    storage.write_bytes(storage.join(root, "run", "sub", "b.bin"), b"\x00\x01")
    storage.write_text(storage.join(root, "run2", "c.txt"), "not under run/")
    assert storage.read_text(a) == "hello"
    assert storage.exists(a) and not storage.exists(storage.join(root, "run", "nope"))
    assert storage.list_files(storage.join(root, "run")) == [a, storage.join(root, "run", "sub", "b.bin")]
    with pytest.raises(StorageError, match="nope"):
        storage.read_bytes(storage.join(root, "run", "nope"))
    storage.write_text(a, "replaced")  # overwrite is atomic and complete
    assert storage.read_text(a) == "replaced"

    local = tmp_path / "up"
    (local / "x").mkdir(parents=True)
    (local / "x" / "f.txt").write_text("f")
    (local / "g.txt").write_text("g")
    targets = storage.upload_dir(local, storage.join(root, "up"))
    assert targets == [storage.join(root, "up", "g.txt"), storage.join(root, "up", "x", "f.txt")]
    down = tmp_path / "down"
    storage.download_dir(storage.join(root, "up"), down)
    assert (down / "x" / "f.txt").read_text() == "f"
    storage.copy(storage.join(root, "up", "g.txt"), storage.join(root, "copied", "g.txt"))
    assert storage.read_text(storage.join(root, "copied", "g.txt")) == "g"
    storage.delete(storage.join(root, "copied", "g.txt"))
    assert not storage.exists(storage.join(root, "copied", "g.txt"))


def test_local_paths_and_file_uris(tmp_path):
    exercise(str(tmp_path / "store"), tmp_path)
    storage.write_text(f"file://{tmp_path}/f/x.txt", "via uri")
    assert (tmp_path / "f" / "x.txt").read_text() == "via uri"
    assert not list((tmp_path / "store").rglob("*.tmp"))


@pytest.mark.integration
def test_s3_through_a_real_server(s3_env, tmp_path):
    exercise(f"s3://{s3_env.bucket}/storage-test", tmp_path)


@pytest.mark.integration
def test_s3_errors_are_clear(s3_env, monkeypatch):
    with pytest.raises(StorageError, match="NoSuchBucket"):
        storage.read_text("s3://no-such-bucket/x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(StorageError, match=r"SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        storage.write_text(f"s3://{s3_env.bucket}/x", "y")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    with pytest.raises(StorageError, match="AWS_ENDPOINT_URL_S3"):
        storage.read_text("s3://b/x")


@pytest.mark.integration
def test_s3_unreachable_fails_after_the_retry_budget(monkeypatch):
    from servers import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("TEACHERLM_S3_RETRY_SECONDS", "2")
    with pytest.raises(StorageError, match="unreachable"):
        storage.write_text("s3://bucket/x", "y")


def test_s3_throttling_is_reported_as_throttling_not_unreachable(monkeypatch):
    """A server that answers 503 SlowDown to everything: after the retry budget, the error says it answered."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class SlowDown(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self):
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_HEAD = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowDown)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("TEACHERLM_S3_RETRY_SECONDS", "2")
    try:
        with pytest.raises(StorageError) as err:
            storage.write_text("s3://bucket/x", "y")
    finally:
        server.shutdown()
    assert "unreachable" not in str(err.value) and "throttling" in str(err.value), str(err.value)


def test_a_local_copy_never_writes_through_a_planted_symlink(tmp_path):
    import os

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    src, dst = tmp_path / "src.txt", tmp_path / "out" / "dst.txt"
    src.write_text("new data")
    dst.parent.mkdir()
    for pid in range(os.getpid() - 5, os.getpid() + 5):  # every name a guessable temp file could have
        (dst.parent / f"dst.txt.{pid}.tmp").symlink_to(victim)
    storage.copy(src, dst)
    assert victim.read_text() == "precious" and dst.read_text() == "new data" and not dst.is_symlink()


def test_written_files_are_readable_by_others_on_a_shared_disk(tmp_path):
    """Atomic writes go through temp files; mkstemp's 0600 must not reach the outputs a team shares."""
    import os
    import stat

    from teacherlm_core import storage
    from teacherlm_core.data.manifest import write_json
    from teacherlm_core.records import write_jsonl

    old = os.umask(0o022)
    try:
        storage.write_text(str(tmp_path / "a.json"), "{}")
        write_json(tmp_path / "manifest.json", {"a": 1})
        write_jsonl(tmp_path / "train.jsonl", [{"id": "1"}])
    finally:
        os.umask(old)
    for name in ("a.json", "manifest.json", "train.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_an_output_that_cannot_be_written_stops_every_stage_before_any_work(tmp_path):
    """A file where the output's folder should be (as a read-only disk would, for root too): each
    stage says so at once, naming the output, before a model loads or a row is read."""
    from fake_engines import ScriptedEngine

    from teacherlm_core.augment import AugmentConfig, augment
    from teacherlm_core.data import build_builtin, import_dataset
    from teacherlm_core.errors import StorageError
    from teacherlm_core.stages.evaluate import evaluate

    build_builtin(tmp_path / "in", per_task=3, seed=0)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    data = str(tmp_path / "in" / "train.jsonl")
    with pytest.raises(StorageError, match=f"{blocker}/eval.json: cannot write"):
        evaluate("never-loaded", data, str(blocker / "eval.json"))
    started = []
    cfg = AugmentConfig(
        model="t", input=str(tmp_path / "in" / "train.jsonl"), output=str(blocker / "aug"), engine="hf"
    )
    with pytest.raises(StorageError, match="cannot write"):
        augment(cfg, engine=lambda: started.append(1) or ScriptedEngine())
    assert not started
    with pytest.raises(StorageError, match="cannot write"):
        import_dataset(
            tmp_path / "in" / "train.jsonl",
            {"task": "t", "id": "id", "question": "question", "choices": "choices", "answer": "answer"},
            blocker / "imp",
        )
