"""The output of one training stage, local or on S3, and how a re-run finds where to resume.

Layout (the same under a local dir and under ``s3://bucket/prefix``)::

    model.safetensors, config.json, tokenizer.json ...   the consolidated model (from_pretrained loads it)
    README.md                                           the model card
    metrics.jsonl                                       one line per logged step: step, loss, lr, tokens_per_s
    train_state.json                                    the resolved config and its fingerprint
    checkpoints/checkpoint-<step>/ ... _CHECKPOINT.json  HF + DeepSpeed checkpoints; the marker comes last,
                                                        with the sha256 of every file (_SHA256-<node>.json:
                                                        each uploading node's share)
    _SUCCESS                                            written last: step, loss, world size, fingerprint

Ranks always write a local directory: the output itself, or for ``s3://`` a mirror under the work
dir that is uploaded as it is written (each checkpoint, then its marker; the model, then
``_SUCCESS``). A checkpoint without its marker is incomplete and never resumed from.

Resuming unpickles the checkpoint (DeepSpeed and the HF Trainer ``torch.load`` optimizer, scheduler
and RNG states with ``weights_only=False``), so whoever can write the bucket could run code in the
training pods. :func:`verify_checkpoint` therefore refuses a checkpoint whose files are not exactly
those whose sha256 the marker recorded at save time; with ``TEACHERLM_CHECKPOINT_KEY`` set, the
marker is also HMAC-signed, so a rewritten marker is refused too.

Threat model (docs/security.md): the bucket's writers (every pipeline step and TrainJob node holds
MinIO's scoped key) must not be able to turn a checkpoint into code that runs at the next resume.
Checksums alone do not stop them (they can rewrite the marker); the HMAC does, as long as the key is
held only where checkpoints are signed and verified: the TrainJob nodes, which get it from the
Secret ``teacherlm-checkpoint-key`` through the TrainingRuntime. Pipeline steps, the roles they run
as and the MinIO users never hold it, and the namespace's admission policy admits only TrainJobs
that run the project's image and ``teacherlm train`` (an arbitrary command in a node could print
it). On that path the runtime sets ``TEACHERLM_CHECKPOINT_KEY_REQUIRED``, and :func:`require_key`
refuses to train without a key: an unsigned cluster run is never silently accepted. Local runs
(one machine, one user) may go without.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from .. import storage
from ..errors import TeacherLMError

__all__ = [
    "CHECKPOINT_MARKER",
    "STATE",
    "SUCCESS",
    "CheckpointKeyMissing",
    "CheckpointRefused",
    "StageOutput",
    "card_summary",
    "checkpoint_marker",
    "copy_model",
    "file_checksums",
    "fingerprint",
    "require_key",
    "verify_checkpoint",
]

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
STATE = "train_state.json"
METRICS = "metrics.jsonl"
CHECKPOINT_MARKER = "_CHECKPOINT.json"
NODE_SUMS = "_SHA256-{node}.json"  # one per uploading node: {relative path: sha256} of its files
KEY_ENV = "TEACHERLM_CHECKPOINT_KEY"
REQUIRED_ENV = "TEACHERLM_CHECKPOINT_KEY_REQUIRED"  # set by the TrainingRuntime: the cluster path
KEY_SECRET = "teacherlm-checkpoint-key"  # the Secret the TrainingRuntime reads the key from
MIN_KEY_CHARS = 32  # `openssl rand -hex 32` gives 64
_CKPT = re.compile(r"checkpoint-(\d+)$")
_OWN = re.compile(r"^(_CHECKPOINT\.json|_SHA256-\d+\.json)$")


class CheckpointRefused(TeacherLMError):
    """A checkpoint that does not match what was saved: it is not loaded (loading runs pickles)."""


class CheckpointKeyMissing(TeacherLMError):
    """Training on the cluster path without a checkpoint key long enough to sign with."""


def require_key() -> None:
    """Refuse to train on the cluster path without a checkpoint key; a no-op elsewhere.

    The cluster path is marked by ``TEACHERLM_CHECKPOINT_KEY_REQUIRED`` (any value but ``""``,
    ``0``, ``false``), which the TrainingRuntime sets on every node. Called before any data, model
    or checkpoint is read, so a node without the Secret stops in its first second.

    Raises:
        CheckpointKeyMissing: the key is unset, or shorter than :data:`MIN_KEY_CHARS` characters.
    """
    if os.environ.get(REQUIRED_ENV, "").strip().lower() in ("", "0", "false", "no"):
        return
    key = os.environ.get(KEY_ENV, "")
    if len(key.strip()) < MIN_KEY_CHARS:
        problem = "is not set" if not key.strip() else f"is shorter than {MIN_KEY_CHARS} characters"
        raise CheckpointKeyMissing(
            f"{KEY_ENV} {problem}: a cluster run signs and verifies its checkpoints; create the Secret "
            f"{KEY_SECRET} in this namespace (kubectl create secret generic {KEY_SECRET} "
            f'--from-literal={KEY_ENV}="$(openssl rand -hex 32)"; docs/security.md) and start the run again'
        )


def file_checksums(ckpt: Path) -> dict[str, str]:
    """``{path relative to ckpt: sha256}`` of the checkpoint's own files (not its markers)."""
    return {
        p.relative_to(ckpt).as_posix(): storage.sha256_file(p)
        for p in sorted(ckpt.rglob("*"))
        if p.is_file() and not _OWN.match(p.name)
    }


def _signature(marker: dict[str, Any], key: str) -> str:
    body = json.dumps({k: v for k, v in marker.items() if k != "hmac"}, sort_keys=True).encode()
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def checkpoint_marker(step: int, fingerprint: str, files: dict[str, str]) -> dict[str, Any]:
    """The marker of a complete checkpoint: step, run fingerprint, sha256 of each file (and an HMAC
    over all of it when ``TEACHERLM_CHECKPOINT_KEY`` is set)."""
    marker: dict[str, Any] = {"step": step, "fingerprint": fingerprint, "time": time.time(), "files": files}
    if os.environ.get(KEY_ENV):
        marker["hmac"] = _signature(marker, os.environ[KEY_ENV])
    return marker


def verify_checkpoint(ckpt: Path, marker: dict[str, Any]) -> None:
    """Refuse ``ckpt`` unless its files are exactly those the marker recorded, byte for byte.

    Raises:
        CheckpointRefused: no checksums in the marker (saved by an older teacherlm), a bad or missing
            signature (with ``TEACHERLM_CHECKPOINT_KEY`` set), or a file added, missing or changed.
    """
    where = f"{ckpt}"
    hint = "delete this checkpoint to resume from an earlier one, or train into a new output"
    recorded = marker.get("files")
    if not isinstance(recorded, dict) or not recorded:
        raise CheckpointRefused(
            f"{where}: its marker records no checksums (saved by an older teacherlm); {hint}"
        )
    key = os.environ.get(KEY_ENV)
    if key and not hmac.compare_digest(str(marker.get("hmac", "")), _signature(marker, key)):
        raise CheckpointRefused(f"{where}: its marker is not signed with {KEY_ENV} (rewritten?); {hint}")
    actual = file_checksums(ckpt)
    problems = [
        f"{name}: changed since it was saved"
        for name in sorted(set(actual) & set(recorded))
        if actual[name] != recorded[name]
    ]
    problems += [f"{name}: not part of the saved checkpoint" for name in sorted(set(actual) - set(recorded))]
    problems += [f"{name}: missing" for name in sorted(set(recorded) - set(actual))]
    if problems:
        raise CheckpointRefused(
            f"{where}: refusing to load it (loading unpickles its files): "
            + "; ".join(problems[:5])
            + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
            + f"; {hint}"
        )


def fingerprint(identity: dict[str, Any]) -> str:
    """A short, stable hash of everything a resumed run must share with the first one."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


class StageOutput:
    """A stage's output URI (local dir or ``s3://``) and the local dir its ranks write."""

    def __init__(self, uri: str, local: str | Path | None = None):
        self.uri = str(uri).rstrip("/")
        self.remote = storage.is_remote(self.uri)
        if local is not None:
            self.local = Path(local)
        elif self.remote:
            from ..tracking import workdir

            digest = hashlib.sha256(self.uri.encode()).hexdigest()[:12]
            self.local = workdir() / "train-mirror" / f"{Path(self.uri).name}-{digest}"
        else:
            self.local = Path(self.uri.removeprefix("file://"))

    def __repr__(self) -> str:
        return f"StageOutput({self.uri!r})"

    @property
    def checkpoints(self) -> Path:
        return self.local / "checkpoints"

    def uri_of(self, *parts: str) -> str:
        return storage.join(self.uri, *parts)

    # -- small JSON files, read from and written to the output itself ---------------------------
    def read_json(self, name: str) -> dict[str, Any] | None:
        uri = self.uri_of(name)
        if not storage.exists(uri):
            return None
        return json.loads(storage.read_text(uri))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
        storage.write_text(self.local / name, text)
        if self.remote:
            storage.write_text(self.uri_of(name), text)

    # -- checkpoints -------------------------------------------------------------------------------
    def complete_checkpoints(self) -> list[tuple[int, dict[str, Any]]]:
        """``(step, marker)`` of every complete checkpoint in the output, oldest first."""
        found = []
        for uri in storage.list_files(self.uri_of("checkpoints")):
            parent, _, name = uri.rpartition("/")
            match = _CKPT.search(parent)
            if name == CHECKPOINT_MARKER and match:
                found.append((int(match.group(1)), json.loads(storage.read_text(uri))))
        return sorted(found, key=lambda item: item[0])

    def has_checkpoints(self) -> bool:
        return bool(storage.list_files(self.uri_of("checkpoints")))

    def fetch_checkpoint(self, step: int) -> Path:
        """The local copy of ``checkpoint-<step>`` (downloaded for ``s3://``), plus ``metrics.jsonl``."""
        local = self.checkpoints / f"checkpoint-{step}"
        if self.remote:
            storage.download_dir(self.uri_of("checkpoints", f"checkpoint-{step}"), local)
            if storage.exists(self.uri_of(METRICS)):
                storage.copy(self.uri_of(METRICS), self.local / METRICS)
        return local

    def upload_checkpoint(self, local_ckpt: Path, node: int = 0) -> None:
        """Upload the checkpoint files this node holds, then their checksums as ``_SHA256-<node>.json``
        (the marker is uploaded separately, last, by the main rank)."""
        sums = file_checksums(local_ckpt)
        for rel in sums:
            storage.copy(str(local_ckpt / rel), self.uri_of("checkpoints", local_ckpt.name, rel))
        storage.write_text(
            self.uri_of("checkpoints", local_ckpt.name, NODE_SUMS.format(node=node)),
            json.dumps(sums, sort_keys=True),
        )

    def saved_checksums(self, local_ckpt: Path) -> dict[str, str]:
        """The sha256 of every file of a checkpoint just saved: hashed here for a local output, else
        merged from each uploading node's ``_SHA256-<node>.json``."""
        if not self.remote:
            return file_checksums(local_ckpt)
        merged: dict[str, str] = {}
        for uri in storage.list_files(self.uri_of("checkpoints", local_ckpt.name)):
            if re.search(r"/_SHA256-\d+\.json$", uri):
                merged |= json.loads(storage.read_text(uri))
        return merged

    def upload_checkpoint_marker(self, local_ckpt: Path) -> None:
        storage.copy(
            str(local_ckpt / CHECKPOINT_MARKER),
            self.uri_of("checkpoints", local_ckpt.name, CHECKPOINT_MARKER),
        )
        if (self.local / METRICS).exists():
            storage.copy(str(self.local / METRICS), self.uri_of(METRICS))

    def prune_remote_checkpoints(self) -> None:
        """Delete remote checkpoints that the local rotation (``save_total_limit``) already dropped."""
        keep = {p.name for p in self.checkpoints.glob("checkpoint-*")}
        for uri in storage.list_files(self.uri_of("checkpoints")):
            name = uri[len(self.uri_of("checkpoints")) :].strip("/").split("/")[0]
            if _CKPT.match(name) and name not in keep:
                storage.delete(uri)

    # -- the final model -------------------------------------------------------------------------
    def fetch_model(self) -> Path:
        """A local dir holding the trained model (``s3://``: downloaded, checkpoints left out)."""
        if self.remote:
            for uri in storage.list_files(self.uri):
                rel = uri[len(self.uri) :].strip("/")
                if not rel.startswith("checkpoints/"):
                    storage.copy(uri, self.local / rel)
        return self.local

    def upload_final(self) -> None:
        """Upload everything outside ``checkpoints/`` (the model, card, metrics); ``_SUCCESS`` last."""
        if not self.remote:
            return
        for path in sorted(p for p in self.local.rglob("*") if p.is_file()):
            rel = path.relative_to(self.local).as_posix()
            if not rel.startswith("checkpoints/") and rel != SUCCESS and not path.name.endswith(".tmp"):
                storage.copy(str(path), self.uri_of(rel))

    def clear(self) -> None:
        """Delete the stage's output (remote objects and the local dir): a stale stage is retrained."""
        if self.remote:
            for uri in storage.list_files(self.uri):
                storage.delete(uri)
        if self.local.exists():
            shutil.rmtree(self.local)

    def reset_mirror(self) -> None:
        """Empty the local mirror of an ``s3://`` output: S3 is the truth, the mirror is rebuilt."""
        if self.remote and self.local.exists():
            shutil.rmtree(self.local)


def copy_model(src: str, dest: str | Path, *, skip: tuple[str, ...] = ("checkpoints/",)) -> None:
    """Copy a trained model's files (local dir or URI) into ``dest``; checkpoints and ``_SUCCESS`` left out."""
    src = src.rstrip("/")
    for uri in storage.list_files(src):
        rel = uri[len(src) :].strip("/")
        if not rel.startswith(skip) and rel != SUCCESS:
            storage.copy(uri, os.path.join(str(dest), rel))


def card_summary(model_dir: str | Path) -> dict[str, Any]:
    """``{"steps", "final_loss"}`` of a trained model, from its ``metrics.jsonl`` (0 and None without one)."""
    metrics = Path(model_dir, METRICS)
    lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()] if metrics.exists() else []
    last = lines[-1] if lines else {}
    return {"steps": last.get("step", 0), "final_loss": last.get("loss")}
