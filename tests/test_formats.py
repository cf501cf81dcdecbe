"""One reader per format for every command, by content; the data contract checked on every path in.

Parquet named ``.jsonl`` (and JSON lines named ``.parquet``) are read as what they are; a BOM and
CRLF line ends are accepted everywhere; anything else is "unsupported file type" (exit 2). NaN
and Infinity are rejected with their line; options that are empty, repeated or more than 26 are
rejected by ``evaluate`` (exit 2) and quarantined by ``augment``; degenerate inputs exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fake_engines import ScriptedEngine

from teacherlm_core.augment import AugmentConfig, augment
from teacherlm_core.data.sources import open_source
from teacherlm_core.errors import DataError
from teacherlm_core.evaluate import load_eval_samples
from teacherlm_core.records import detect_format, iter_raw_records, read_samples, write_parquet

pytestmark = pytest.mark.timeout(120)

ROWS = [{"id": f"q{i}", "task": "t", "question": f"Is {i} even?", "choices": ["yes", "no"],
         "answer": "yes" if i % 2 == 0 else "no"} for i in range(4)]  # fmt: skip


def cli(*args):
    res = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", *args], capture_output=True, text=True, timeout=120
    )
    return res.returncode, res.stderr


def _evaluate(path, tmp_path):
    return cli(
        "evaluate", "--model", "never-loaded", "--data", str(path), "--output", str(tmp_path / "r.json")
    )


def _every_reader(path) -> dict[str, list[str]]:
    """The ids each path in reads from ``path``: eval, augment/STaR/train (read_samples), import."""
    (part,) = open_source(str(path))
    return {
        "eval": [s.id for s in load_eval_samples(str(path))],
        "read_samples": [s.id for _, s in read_samples(path)],
        "import": [r["id"] for _, r, _ in part.rows if isinstance(r, dict)],
    }


@pytest.mark.parametrize("name", ["data.jsonl", "data.parquet", "data.json"])
def test_parquet_is_recognised_by_its_content(tmp_path, name):
    path = tmp_path / name
    write_parquet(path, ROWS)
    assert detect_format(path) == "parquet"
    assert _every_reader(path) == {key: [r["id"] for r in ROWS] for key in ("eval", "read_samples", "import")}


@pytest.mark.parametrize("name", ["data.parquet", "data.jsonl"])
def test_json_lines_with_a_bom_and_crlf_are_read_by_every_path(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(r).encode() + b"\r\n" for r in ROWS))
    assert detect_format(path) == "jsonl"
    assert _every_reader(path) == {key: [r["id"] for r in ROWS] for key in ("eval", "read_samples", "import")}


@pytest.mark.parametrize(
    ("content", "what"),
    [(b"id,task,question\n1,t,q\n", "starts with b'id,task,'"), (b"PK\x03\x04zip", "starts with b'PK\\x03\\x04"),
     (b'[{"id": "q0"}]', "a JSON array")],
    ids=["csv", "zip", "json-array"],
)  # fmt: skip
def test_anything_else_is_an_unsupported_file_type(tmp_path, content, what):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match="unsupported file type") as err:
        list(iter_raw_records(path))
    assert what in str(err.value)
    code, stderr = _evaluate(path, tmp_path)
    assert code == 2 and "unsupported file type" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize(
    ("codec", "name"), [("gzip", "data.jsonl.gz"), ("zstd", "data.jsonl.zst"), ("gzip", "data.jsonl")]
)
def test_compressed_json_lines_are_read_by_every_path(tmp_path, codec, name):
    import pyarrow as pa

    path = tmp_path / name
    with pa.CompressedOutputStream(str(path), codec) as out:
        out.write(b"".join(json.dumps(r).encode() + b"\n" for r in ROWS))
    assert _every_reader(path) == {key: [r["id"] for r in ROWS] for key in ("eval", "read_samples", "import")}
    path.write_bytes(path.read_bytes()[:12])  # a download that broke off
    code, stderr = _evaluate(path, tmp_path)
    assert code == 2 and "compressed data" in stderr and "Traceback" not in stderr


def test_nan_and_infinity_are_rejected_with_their_line(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = [json.dumps(r) for r in ROWS]
    lines[1] = lines[1].replace('"task": "t"', '"task": "t", "score": NaN')
    lines[2] = lines[2].replace('"task": "t"', '"task": "t", "score": -Infinity')
    path.write_text("\n".join(lines) + "\n")
    code, stderr = _evaluate(path, tmp_path)
    assert code == 2 and f"{path}:2: field 'score': non-standard JSON value NaN" in stderr
    cfg = AugmentConfig(
        model="t", input=str(path), output=str(tmp_path / "run"), engine="hf", temperature=0.0
    )
    manifest = augment(cfg, engine=ScriptedEngine)
    assert manifest["counts"] == {"input": 4, "output": 2, "quarantined": 2}

    def strict(name):
        raise AssertionError(f"non-standard JSON {name}")

    for p in (tmp_path / "run").rglob("*.json*"):  # no output file holds non-standard JSON
        for line in p.read_text().splitlines() if p.suffix == ".jsonl" else [p.read_text()]:
            json.loads(line, parse_constant=strict)


def test_nan_in_a_parquet_row_is_rejected(tmp_path):
    path = tmp_path / "data.parquet"
    write_parquet(path, [r | {"score": float("nan") if i == 1 else 0.5} for i, r in enumerate(ROWS)])
    rows = list(iter_raw_records(path))
    assert isinstance(rows[1][1], DataError) and rows[1][1].field == "score" and "nan" in rows[1][1].reason


@pytest.mark.parametrize(
    ("choices", "answer", "reason"),
    [(["Paris", "Paris"], "Paris", "options are not distinct: 'Paris' appears twice"),
     (["Oslo", "Oslo ", "Paris"], "Paris", "options are not distinct: 'Oslo' and 'Oslo ' differ only in whitespace"),
     (["Paris", " "], "Paris", "option 2 is empty"),
     ([f"o{i}" for i in range(27)], "o3", "27 options, but the prompt format can letter at most 26")],
    ids=["repeated", "whitespace-only", "empty", "27"],
)  # fmt: skip
def test_the_contract_on_options_holds_on_every_path(tmp_path, choices, answer, reason):
    path = tmp_path / "data.jsonl"
    bad = {"id": "bad", "task": "t", "question": "Capital of France?", "choices": choices, "answer": answer}
    path.write_text("".join(json.dumps(r) + "\n" for r in [*ROWS[:2], bad, *ROWS[2:]]))
    code, stderr = _evaluate(path, tmp_path)
    assert code == 2 and f"{path}:3: field 'choices': {reason}" in stderr
    cfg = AugmentConfig(
        model="t", input=str(path), output=str(tmp_path / "run"), engine="hf", temperature=0.0
    )
    manifest = augment(cfg, engine=ScriptedEngine)
    assert manifest["counts"] == {"input": 5, "output": 4, "quarantined": 1}
    (row,) = [
        json.loads(x)
        for x in next((tmp_path / "run" / "quarantine").glob("*.jsonl")).read_text().splitlines()
    ]
    assert row["line"] == 3 and row["field"] == "choices" and reason in row["reason"]


@pytest.mark.parametrize("content", [b"", b"\n  \n\r\n"], ids=["empty", "blank-lines"])
def test_no_records_at_all_exit_2(tmp_path, content):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    code, stderr = _evaluate(path, tmp_path)
    assert code == 2 and ("file is empty" in stderr or "holds no records" in stderr)
    code, stderr = cli("augment", "--teacher", "t", "--input", str(path), "--output", str(tmp_path / "o"),
                       "--engine", "hf", "--no-track")  # fmt: skip
    assert code == 2 and "Traceback" not in stderr


def test_a_model_that_cannot_be_found_exits_2_naming_what_a_model_can_be(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    code, stderr = cli("evaluate", "--model", str(tmp_path / "no-such-model"), "--data", str(path), "--engine",
                       "hf", "--output", str(tmp_path / "r.json"))  # fmt: skip
    assert code == 2 and "Traceback" not in stderr
    assert "cannot load model" in stderr and "teacherlm models list" in stderr
