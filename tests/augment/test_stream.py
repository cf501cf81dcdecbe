"""One generation stream per shard (issue 14 item 3): the engine never drains at a part boundary.

The next part's requests reach the engine before the current part's last result comes back,
retries re-enter the stream, and each part is committed, files then marker, as soon as its last
request is done, in part order, with the bytes the per-part path wrote.
"""

from __future__ import annotations

import json

import pytest
from fake_engines import ScriptedEngine, StreamingScriptedEngine

from teacherlm_core.augment import AugmentConfig, augment, shard

pytestmark = pytest.mark.timeout(60)

ROWS = [{"id": f"q{i}", "task": "t", "question": f"Is {i} even?", "choices": ["yes", "no"],
         "answer": "yes" if i % 2 == 0 else "no"} for i in range(14)]  # fmt: skip


def _cfg(tmp_path, name: str, **kw) -> AugmentConfig:
    src = tmp_path / "in.jsonl"
    if not src.exists():
        src.write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "{not json\n")
    args = {"model": "scripted-teacher", "input": str(src), "output": str(tmp_path / name), "engine": "hf",
            "num_shards": 1, "part_size": 3, "temperature": 1.0, "max_retries": 3} | kw  # fmt: skip
    return AugmentConfig(**args)


def _first(events, kind: str, part: int) -> int:
    return min(i for i, (e, key) in enumerate(events) if e == kind and key[0] == part)


def _last(events, kind: str, part: int) -> int:
    return max(i for i, (e, key) in enumerate(events) if e == kind and key[0] == part)


def test_the_next_part_is_fed_before_the_current_part_drains(tmp_path):
    engine = StreamingScriptedEngine(batch=2, empty_rate=0.3)
    committed: dict[int, int] = {}  # part -> how many engine events had happened when it was committed
    manifest = augment(
        _cfg(tmp_path, "run"),
        0,
        engine=lambda: engine,
        on_part=lambda s: committed.setdefault(s.part, len(engine.events)),
    )
    events = engine.events
    n_parts = len(manifest["parts"])
    assert n_parts == 5 and list(committed) == list(range(n_parts))  # committed in part order
    assert any(key[3] > 0 for _, key in events), "no retry: the test lost its point"
    for p in range(n_parts - 1):
        # the drain is gone: part p+1 was in the engine before part p's last result came back...
        assert _first(events, "submit", p + 1) < _last(events, "result", p)
        # ...and part p was committed as soon as it was done, while part p+1 still ran
        assert _last(events, "result", p) < committed[p] <= _last(events, "result", p + 1)
    for p in range(shard.LOOKAHEAD, n_parts):
        # bounded look-ahead: a part enters the stream only once the part LOOKAHEAD before it is committed
        assert committed[p - shard.LOOKAHEAD] <= _first(events, "submit", p)
    # retries re-enter the stream while the next part runs
    assert any(
        e == "submit" and key[3] > 0 and key[0] + 1 < n_parts and i > _first(events, "submit", key[0] + 1)
        and events.index(("result", key)) < _last(events, "result", key[0] + 1)
        for i, (e, key) in enumerate(events)
    )  # fmt: skip


def _parts(out) -> dict[str, bytes]:
    """``{"part-00003.jsonl": bytes}``: each part's files, without the writer's id."""
    files = {}
    for path in (out / "shards").rglob("part-*.jsonl"):
        part, _writer, *rest = path.name.split(".")
        files[f"{path.parent.name}/{part}.{'.'.join(rest)}"] = path.read_bytes()
    return files


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_the_stream_writes_the_bytes_of_the_per_part_path(tmp_path, monkeypatch, temperature):
    kw = {"num_shards": 2, "temperature": temperature, "max_retries": 1}  # some records fail every attempt
    streamed = augment(
        _cfg(tmp_path, "stream", **kw), engine=lambda: StreamingScriptedEngine(batch=5, empty_rate=0.4)
    )
    # The path before the stream: one part at a time, one generate call a retry round.
    monkeypatch.setattr(shard, "LOOKAHEAD", 1)
    per_part = augment(_cfg(tmp_path, "per-part", **kw), engine=lambda: ScriptedEngine(empty_rate=0.4))
    assert streamed["counts"] == per_part["counts"] and streamed["counts"]["quarantined"] > 1
    a, b = _parts(tmp_path / "stream"), _parts(tmp_path / "per-part")
    assert len(a) >= 6 and a == b


def test_a_rerun_after_a_kill_mid_stream_writes_each_record_once(tmp_path):
    """Killed (an exception from the engine) while two parts are in flight: the re-run generates only
    the parts without a marker, and the result equals an uninterrupted run's."""

    class Killed(BaseException):
        pass

    class Dying(StreamingScriptedEngine):
        def generate(self, prompts, params, progress=None):
            if (
                "submit",
                (2, 0, "fundamentals", 0),
            ) in self.events:  # part 2 in the stream, nothing of it back
                raise Killed
            return super().generate(prompts, params, progress)

    cfg = _cfg(tmp_path, "killed")
    dying = Dying(batch=2, empty_rate=0.3)
    with pytest.raises(Killed):
        augment(cfg, 0, engine=lambda: dying)
    assert {key[0] for e, key in dying.events if e == "submit"} == {0, 1, 2}
    done_before = sorted(p.name.split(".")[0] for p in (tmp_path / "killed" / "shards").rglob("part-*.json"))
    assert done_before and "part-00002" not in done_before

    again = StreamingScriptedEngine(batch=2, empty_rate=0.3)
    resumed = augment(cfg, 0, engine=lambda: again)
    assert {key[0] for e, key in again.events if e == "submit"}.isdisjoint(int(n[5:]) for n in done_before)
    reference = augment(
        _cfg(tmp_path, "reference"), 0, engine=lambda: StreamingScriptedEngine(batch=2, empty_rate=0.3)
    )
    assert _parts(tmp_path / "killed") == _parts(tmp_path / "reference")
    assert resumed["in"] == reference["in"] == len(ROWS) + 1 == resumed["out"] + resumed["quarantined"]
