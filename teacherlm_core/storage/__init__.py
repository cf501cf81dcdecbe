"""One storage API over local paths, ``file://`` URIs and ``s3://bucket/key`` (MinIO SDK).

Writes are atomic: locally a temp file in the target directory then ``os.replace``; on S3 a
single ``put_object`` (an object is visible complete or not at all). Callers build "complete,
then marker" protocols on top (see ``augment``). S3 settings come from the standard variables
``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_DEFAULT_REGION``; transient S3 failures (connection refused,
5xx) are retried with backoff for up to ``TEACHERLM_S3_RETRY_SECONDS`` (default 60).

This module is the face: the functions every caller uses (``storage.read_text(uri)``, ...),
dispatching on the URI to a backend, :mod:`.local` (:class:`LocalStore`) or :mod:`.s3`
(:class:`S3Store`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ..errors import StorageError
from .local import DIR_MODE, LocalStore, atomic_temp, remove_stale_temps, sha256_file
from .s3 import S3Settings, S3Store

__all__ = [
    "DIR_MODE",
    "LocalStore",
    "S3Store",
    "Store",
    "atomic_temp",
    "check_writable",
    "chunk_lines",
    "content_id",
    "copy",
    "delete",
    "download_dir",
    "exists",
    "is_remote",
    "iter_chunks",
    "iter_lines",
    "join",
    "list_files",
    "read_bytes",
    "read_text",
    "remove_stale_temps",
    "sha256_file",
    "store_for",
    "upload_dir",
    "write_bytes",
    "write_text",
]


class Store(Protocol):
    """What every backend does; keys are paths relative to the store's root."""

    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def upload_file(self, local: str, key: str) -> None: ...
    def download_file(self, key: str, local: str) -> None: ...
    def content_id(self, key: str) -> dict[str, Any]: ...


def is_remote(uri: str) -> bool:
    return str(uri).startswith("s3://")


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a local path or URI with ``/``."""
    out = str(uri).rstrip("/")
    for p in parts:
        out += "/" + str(p).strip("/")
    return out


_S3_CLIENTS: dict[S3Settings, S3Store] = {}


def store_for(uri: str) -> Store:
    """The backend for ``uri``; one S3 client per distinct endpoint/credentials, reused."""
    if is_remote(uri):
        settings = S3Settings.from_env()
        if settings not in _S3_CLIENTS:
            _S3_CLIENTS[settings] = S3Store(settings)
        return _S3_CLIENTS[settings]
    return LocalStore()


def _local(uri: str) -> str:
    return uri[len("file://") :] if str(uri).startswith("file://") else str(uri)


def _norm(uri: str | os.PathLike[str]) -> str:
    return _local(os.fspath(uri))


def read_bytes(uri: str | os.PathLike[str]) -> bytes:
    uri = _norm(uri)
    return store_for(uri).read_bytes(uri)


def read_text(uri: str | os.PathLike[str]) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str | os.PathLike[str], data: bytes) -> None:
    uri = _norm(uri)
    store_for(uri).write_bytes(uri, data)


def write_text(uri: str | os.PathLike[str], text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def exists(uri: str | os.PathLike[str]) -> bool:
    uri = _norm(uri)
    return store_for(uri).exists(uri)


def content_id(uri: str | os.PathLike[str]) -> dict[str, Any]:
    """What a file holds, cheaply: ``{"size", "sha256"}`` locally, ``{"size", "etag"}`` on S3 (no download).

    A changed file gives another id, so a resumed run can tell its input was replaced in place.

    Raises:
        StorageError: no such file.
    """
    uri = _norm(uri)
    return store_for(uri).content_id(uri)


def iter_chunks(uri: str | os.PathLike[str], size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of one file, ``size`` bytes at a time, streamed (never the whole file in memory).

    On S3 one ranged GET streams the object; a transient failure mid-stream re-opens it at the
    byte reached (``offset``), within the store's retry budget, so nothing is read twice or skipped.

    Raises:
        StorageError: no such file, or S3 unreachable for longer than the retry budget.
    """
    uri = _norm(uri)
    if not is_remote(uri):
        try:
            fh = open(uri, "rb")  # noqa: SIM115 (closed below; a generator cannot use with across yields cleanly)
        except FileNotFoundError:
            raise StorageError(f"{uri}: no such file") from None
        with fh:
            yield from iter(lambda: fh.read(size), b"")
        return
    store = store_for(uri)
    assert isinstance(store, S3Store)
    yield from store.iter_chunks(uri, size)


def iter_lines(uri: str | os.PathLike[str], size: int = 1 << 20) -> Iterator[bytes]:
    """The lines of one file as bytes (each with its ``\\n``, the last one maybe without), streamed."""
    return chunk_lines(iter_chunks(uri, size))


def chunk_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Byte chunks (in order) cut into lines, each with its ``\\n`` (the last one maybe without)."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line + b"\n"
    if rest:
        yield rest


def check_writable(uri: str | os.PathLike[str], *, directory: bool = False) -> None:
    """Fail now, before any work, if output ``uri`` (a file, or a ``directory``) cannot be written.

    Locally: its folder is created if missing and a temp file is made and removed in it (a
    read-only or full disk, a missing permission, a file where a folder should be). Remotely: a
    small object is written and deleted beside it (a read-only key or a missing bucket).

    Raises:
        StorageError: naming ``uri`` and why, before a model loads or an item is scored.
    """
    uri = _norm(uri)
    name = "" if directory else uri.rstrip("/").rsplit("/", 1)[-1]
    if is_remote(uri):
        probe = join(uri if directory else uri.rsplit("/", 1)[0], f".{name}write-check-{os.getpid()}")
        try:
            write_bytes(probe, b"")
            delete(probe)
        except Exception as exc:  # the S3 client raises many types
            raise StorageError(f"{uri}: cannot write the output there ({exc}); nothing was run") from exc
        return
    folder = Path(_local(uri)) if directory else Path(_local(uri)).parent
    try:
        if Path(_local(uri)).is_dir() and not directory:
            raise IsADirectoryError(f"{uri} is a directory")
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = atomic_temp(folder, f".{name}write-check-{os.getpid()}-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise StorageError(f"{uri}: cannot write the output there ({exc}); nothing was run") from exc


def list_files(prefix: str | os.PathLike[str]) -> list[str]:
    """Every file under ``prefix`` (recursive), as full paths or URIs, sorted."""
    prefix = _norm(prefix)
    return store_for(prefix).list(prefix)


def delete(uri: str | os.PathLike[str]) -> None:
    uri = _norm(uri)
    store_for(uri).delete(uri)


def copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy one file between any two backends (through a local temp file when both are remote)."""
    src, dst = _norm(src), _norm(dst)
    if not is_remote(src):
        if not os.path.isfile(src):
            raise StorageError(f"{src}: no such file")
        store_for(dst).upload_file(src, dst)
    elif not is_remote(dst):
        store_for(src).download_file(src, dst)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "obj")
            store_for(src).download_file(src, local)
            store_for(dst).upload_file(local, dst)


def upload_dir(local_dir: str | os.PathLike[str], uri: str) -> list[str]:
    """Copy every file under ``local_dir`` to ``uri`` keeping relative paths; returns the targets."""
    root = Path(local_dir)
    targets = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        target = join(uri, path.relative_to(root).as_posix())
        copy(str(path), target)
        targets.append(target)
    return targets


def download_dir(uri: str, local_dir: str | os.PathLike[str]) -> list[str]:
    """Copy every file under ``uri`` into ``local_dir`` keeping relative paths; returns local paths."""
    uri = _norm(uri).rstrip("/")
    out = []
    for src in list_files(uri):
        rel = src[len(uri) :].lstrip("/")
        local = os.path.join(local_dir, rel)
        copy(src, local)
        out.append(local)
    return out
