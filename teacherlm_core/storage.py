"""One storage API over local paths, ``file://`` URIs and ``s3://bucket/key`` (MinIO SDK).

Writes are atomic: locally a temp file in the target directory then ``os.replace``; on S3 a
single ``put_object`` (an object is visible complete or not at all). Callers build "complete,
then marker" protocols on top (see ``augment``). S3 settings come from the standard variables
``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``), ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_DEFAULT_REGION``; transient S3 failures (connection refused,
5xx) are retried with backoff for up to ``TEACHERLM_S3_RETRY_SECONDS`` (default 60).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from .errors import StorageError

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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()
_FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file: others can read a shared output
DIR_MODE = 0o777 & ~_UMASK  # what mkdir() would give a new directory (mkdtemp gives 0700)


def atomic_temp(folder: str | os.PathLike[str] | None, prefix: str) -> tuple[int, str]:
    """``(fd, path)`` of a new ``{prefix}*.tmp`` file in ``folder``, to be renamed over its target.

    Unlike a bare :func:`tempfile.mkstemp` (mode 0600), the file gets the mode a plain ``open``
    would (0644 under the usual umask), so outputs on a shared disk stay readable by the team.
    """
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    os.fchmod(fd, _FILE_MODE)
    return fd, tmp


class LocalStore:
    """A directory on the local file system (``file://`` prefix allowed)."""

    def read_bytes(self, key: str) -> bytes:
        try:
            return Path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"{key}: no such file") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        path = Path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = atomic_temp(path.parent, f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        return Path(key).exists()

    def list(self, prefix: str) -> list[str]:
        root = Path(prefix)
        if root.is_file():
            return [str(root)]
        if not root.is_dir():
            return []
        return sorted(str(p) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))

    def delete(self, key: str) -> None:
        Path(key).unlink(missing_ok=True)

    def upload_file(self, local: str, key: str) -> None:
        if os.path.abspath(local) == os.path.abspath(key):
            return
        path = Path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A new file of an unpredictable name (O_EXCL): never a symlink planted at a name we chose.
        fd, tmp = atomic_temp(path.parent, f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as out, open(local, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            os.replace(tmp, key)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def download_file(self, key: str, local: str) -> None:
        if not Path(key).is_file():
            raise StorageError(f"{key}: no such file")
        self.upload_file(key, local)

    def content_id(self, key: str) -> dict[str, Any]:
        if not Path(key).is_file():
            raise StorageError(f"{key}: no such file")
        st = Path(key).stat()
        return {"size": st.st_size, "sha256": sha256_file(key)}


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str | None
    secret_key: str | None
    region: str | None

    @classmethod
    def from_env(cls) -> S3Settings:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            raise StorageError(
                "s3:// URIs need AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL), e.g. http://minio:9000"
            )
        return cls(
            endpoint=endpoint,
            access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            region=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"),
        )


def _transient(exc: BaseException) -> bool:
    import urllib3
    from minio.error import S3Error, ServerError

    if isinstance(exc, ServerError):  # 5xx
        return True
    if isinstance(exc, S3Error):
        return exc.code in {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"}
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


class S3Store:
    """An S3 bucket through the MinIO SDK; ``key`` arguments are ``s3://bucket/key`` URIs."""

    def __init__(self, settings: S3Settings | None = None):
        import urllib3
        from minio import Minio

        self.settings = settings or S3Settings.from_env()
        url = urlparse(self.settings.endpoint)
        # Few urllib3 retries: tenacity below owns the retry policy, with a time budget.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            url.netloc,
            access_key=self.settings.access_key,
            secret_key=self.settings.secret_key,
            region=self.settings.region,
            secure=url.scheme == "https",
            http_client=http,
        )
        self._retry_seconds = float(os.environ.get("TEACHERLM_S3_RETRY_SECONDS", "60"))

    @staticmethod
    def split(uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StorageError(f"{uri}: not an s3://bucket/key URI")
        return parsed.netloc, parsed.path.lstrip("/")

    def _call(self, what: str, uri: str, fn, *args, **kwargs):
        from minio.error import S3Error
        from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential_jitter

        wrapped = retry(
            retry=retry_if_exception(_transient),
            stop=stop_after_delay(self._retry_seconds),
            # jitter: many shard tasks throttled at once must not come back in lockstep
            wait=wait_exponential_jitter(initial=0.5, max=5, jitter=1),
            reraise=True,
        )(fn)
        try:
            return wrapped(*args, **kwargs)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchBucket"}:
                raise StorageError(f"{uri}: {exc.code}") from None
            again = f" after retrying for {self._retry_seconds:.0f}s" if _transient(exc) else ""
            raise StorageError(f"{uri}: {what} failed{again}: {exc.code}: {exc.message}") from exc
        except Exception as exc:
            import urllib3
            from minio.error import ServerError

            # It answered, with 5xx (urllib3 gives up on a 503 SlowDown with a ResponseError):
            # busy or throttling, not unreachable.
            answered = isinstance(exc, ServerError) or (
                isinstance(exc, urllib3.exceptions.MaxRetryError)
                and isinstance(exc.reason, urllib3.exceptions.ResponseError)
            )
            if answered:
                raise StorageError(
                    f"{uri}: {what} failed after retrying for {self._retry_seconds:.0f}s: S3 endpoint "
                    f"{self.settings.endpoint} kept answering 5xx (overloaded or throttling: {exc})"
                ) from exc
            if _transient(exc):
                raise StorageError(
                    f"{uri}: {what} failed after retrying for {self._retry_seconds:.0f}s: S3 endpoint "
                    f"{self.settings.endpoint} unreachable ({type(exc).__name__})"
                ) from exc
            raise

    def ensure_bucket(self, bucket: str) -> None:
        if not self._call("bucket check", f"s3://{bucket}", self.client.bucket_exists, bucket):
            self._call("bucket creation", f"s3://{bucket}", self.client.make_bucket, bucket)

    def read_bytes(self, key: str) -> bytes:
        bucket, name = self.split(key)

        def get() -> bytes:
            resp = self.client.get_object(bucket, name)
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()

        return self._call("read", key, get)

    def write_bytes(self, key: str, data: bytes) -> None:
        bucket, name = self.split(key)
        self._call("write", key, lambda: self.client.put_object(bucket, name, io.BytesIO(data), len(data)))

    def put_if(self, key: str, data: bytes, etag: str | None = None) -> str | None:
        """Write ``key`` only if it does not exist yet (``etag`` None: ``If-None-Match: *``) or still
        is the version with ``etag`` (``If-Match``): the server decides, atomically (S3, MinIO).

        Returns the new ETag, or None when the condition failed (412, or 409 for a racing write).
        """
        from minio.error import S3Error

        bucket, name = self.split(key)
        headers = {"If-None-Match": "*"} if etag is None else {"If-Match": f'"{etag}"'}

        def put() -> str | None:
            try:
                # put_object would send these headers as user metadata (x-amz-meta-*); the SDK's
                # request layer signs and sends them as given.
                return self.client._put_object(bucket, name, data, headers=dict(headers)).etag
            except S3Error as exc:
                if exc.code in {"PreconditionFailed", "ConditionalRequestConflict"}:
                    return None
                raise

        return self._call("conditional write", key, put)

    def stat(self, key: str) -> tuple[str, float] | None:
        """(ETag, last-modified as a Unix time by the server's clock) of ``key``, or None if absent."""
        from minio.error import S3Error

        bucket, name = self.split(key)

        def stat():
            try:
                st = self.client.stat_object(bucket, name)
            except S3Error as exc:
                if exc.code in {"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"}:
                    return None
                raise
            return st.etag, st.last_modified.timestamp()

        return self._call("stat", key, stat)

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        bucket, name = self.split(key)

        def stat() -> bool:
            try:
                self.client.stat_object(bucket, name)
                return True
            except S3Error as exc:
                if exc.code in {"NoSuchKey", "NoSuchObject", "NotFound", "NoSuchBucket", "ResourceNotFound"}:
                    return False
                raise

        return self._call("stat", key, stat)

    def list(self, prefix: str) -> list[str]:
        bucket, name = self.split(prefix)
        # "Under prefix" means a directory: s3://b/run must not match s3://b/run2/...
        folder = name.rstrip("/") + "/" if name else ""
        objs = self._call(
            "list", prefix, lambda: list(self.client.list_objects(bucket, prefix=folder, recursive=True))
        )
        found = sorted(f"s3://{bucket}/{o.object_name}" for o in objs if not o.is_dir)
        if not found and name and self.exists(prefix):
            return [prefix]
        return found

    def delete(self, key: str) -> None:
        bucket, name = self.split(key)
        self._call("delete", key, self.client.remove_object, bucket, name)

    def upload_file(self, local: str, key: str) -> None:
        bucket, name = self.split(key)
        # One part in flight: an upload holds one part (5 MiB or more) in memory, whatever the
        # file's size; minio's default of 3 parallel parts held ~18 MiB more in the plan step at
        # 1M-2M records (its RSS 57 -> 74 MiB; one part: 57 MiB at 100k and at 2M, as fast).
        self._call("upload", key, self.client.fput_object, bucket, name, local, num_parallel_uploads=1)

    def content_id(self, key: str) -> dict[str, Any]:
        bucket, name = self.split(key)
        st = self._call("stat", key, self.client.stat_object, bucket, name)
        return {"size": st.size, "etag": st.etag}

    def iter_chunks(self, key: str, size: int = 1 << 20) -> Iterator[bytes]:
        """Stream an object; a transient failure mid-stream resumes at the byte reached."""
        import time

        bucket, name = self.split(key)
        pos, deadline = 0, None
        while True:
            resp = self._call("read", key, self.client.get_object, bucket, name, offset=pos)
            try:
                for chunk in resp.stream(size):
                    pos += len(chunk)
                    yield chunk
                return
            except Exception as exc:
                if not _transient(exc):
                    raise
                deadline = deadline or time.monotonic() + self._retry_seconds
                if time.monotonic() > deadline:
                    raise StorageError(f"{key}: read failed at byte {pos} after retrying: {exc}") from exc
                time.sleep(0.5)
            finally:
                resp.close()
                resp.release_conn()

    def download_file(self, key: str, local: str) -> None:
        bucket, name = self.split(key)
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{local}.{os.getpid()}.tmp"
        self._call("download", key, self.client.fget_object, bucket, name, tmp)
        os.replace(tmp, local)


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


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a local file's bytes (cached in this process while its inode, size and times stay the same)."""
    st = os.stat(path)
    return _sha256_file(os.fspath(path), (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


@functools.lru_cache(maxsize=256)
def _sha256_file(path: str, stamp: tuple[int, int, int, int]) -> str:
    """sha256 of a local file, read in 1 MiB blocks; ``stamp`` (inode, size, mtime, ctime) keys the cache."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def remove_stale_temps(folder: str | os.PathLike[str], prefix: str) -> int:
    """Delete ``folder/<prefix><pid>-*`` temp files and dirs left by processes of this host that are
    gone (a kill -9 mid-write); a live writer's temps are kept. Returns how many were removed."""
    removed = 0
    for path in Path(folder).glob(f"{prefix}*"):
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
