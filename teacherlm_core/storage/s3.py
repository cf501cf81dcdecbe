"""The S3 backend (MinIO SDK): ``s3://bucket/key`` objects, with retries and conditional writes.

Settings come from the standard variables ``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``),
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_DEFAULT_REGION``; transient failures
(connection refused, 5xx, throttling) are retried with backoff for up to
``TEACHERLM_S3_RETRY_SECONDS`` (default 60). A write is one ``put_object``: an object is visible
complete or not at all; :meth:`S3Store.put_if` writes only if the object is (still) as expected.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import StorageError


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
