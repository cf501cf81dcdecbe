"""One merge of an output at a time, told to a second one in one line.

A local output: the kernel's lock (``flock``) on ``OUTPUT/.merge.lock``, released however the merge
ends, ``kill -9`` included.

An S3 output: a lock object ``OUTPUT/.merge.lock`` created with a conditional write
(``If-None-Match: *``), so that the server lets exactly one writer create it. Its holder renews it
every quarter of its lease (a conditional write on its own ETag); a lock that was not renewed for
its lease (``TEACHERLM_MERGE_LEASE_SECONDS``, default 120, by the S3 server's clock) is a dead
holder's and is taken over with a conditional write on that lock's ETag, which only one taker wins.
A holder on this host whose process is gone is dead at once (a ``kill -9`` on a laptop), and so is
one of the same KFP run (an earlier attempt of this pipeline task: KFP retries a task only once
its pod has failed, and a run has one merge of an output). A merge
ended by Ctrl-C or SIGTERM deletes its lock on the way out. The clocks of the merging machines and
of the S3 server must agree to well within the lease.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import storage
from ..errors import TeacherLMError
from ..run_context import kfp_run_id
from ..storage.local import pid_alive

__all__ = ["LEASE_ENV", "LOCK", "merge_lock"]

LOCK = ".merge.lock"
LEASE_ENV = "TEACHERLM_MERGE_LEASE_SECONDS"
log = logging.getLogger(__name__)
_UNCHECKED: set[str] = set()  # S3 endpoints found to ignore conditional writes (warned once each)


def _busy(output: str, holder: str) -> TeacherLMError:
    return TeacherLMError(
        f"{output}: another merge of this output is running ({holder}); run this one again when it ends"
    )


@contextmanager
def merge_lock(output: str) -> Iterator[Callable[[], None]]:
    """Hold the merge lock of ``output`` for the block; yields ``check()``, to call before the
    merge's results are published: it raises if an S3 lease was lost meanwhile.

    Raises:
        TeacherLMError: another merge holds the lock (naming its host and pid).
    """
    if storage.is_remote(output):
        with _S3Lease(output) as lease:
            yield lease.check
        return
    Path(output).mkdir(parents=True, exist_ok=True)
    with open(os.path.join(output, LOCK), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise _busy(output, f"pid {fh.read().strip() or '?'}") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield lambda: None
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _S3Lease:
    def __init__(self, output: str):
        self.output, self.uri = output, storage.join(output, LOCK)
        self.store = storage.store_for(self.uri)
        self.lease_s = float(os.environ.get(LEASE_ENV, "120"))
        self.me = {
            "owner": uuid.uuid4().hex,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "kfp_run": kfp_run_id(),
        }
        self.etag: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _body(self) -> bytes:
        # A new ETag at every renewal: a taker's If-Match on the ETag it saw fails once we renewed.
        return json.dumps(self.me | {"lease_seconds": self.lease_s, "renewed": time.time()}).encode()

    def __enter__(self) -> _S3Lease:
        try:
            self.etag = self.store.put_if(self.uri, self._body())
            if self.etag is None:
                self._take_over_or_refuse()
            self._check_conditions_are_honoured()
        except BaseException:  # Ctrl-C or SIGTERM while acquiring: leave no lock behind
            self._release()
            raise
        self._renewer = threading.Thread(target=self._renew, name="merge-lease", daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=30)
        self._release()

    def _holder(self) -> dict:
        try:
            holder = json.loads(self.store.read_bytes(self.uri))
        except (ValueError, TeacherLMError):  # unreadable, or deleted between two reads
            return {}
        return holder if isinstance(holder, dict) else {}

    def _take_over_or_refuse(self) -> None:
        for _ in range(5):  # the holder may release or renew between our reads
            seen = self.store.stat(self.uri)
            if seen is None:  # released meanwhile
                self.etag = self.store.put_if(self.uri, self._body())
                if self.etag:
                    return
                continue
            etag, modified = seen
            holder = self._holder()
            if holder.get("owner") == self.me["owner"]:  # our write succeeded; its answer was lost
                self.etag = etag
                return
            age = time.time() - modified
            pid = holder.get("pid")
            gone = holder.get("host") == self.me["host"] and isinstance(pid, int) and not pid_alive(pid)
            retried = bool(self.me["kfp_run"]) and holder.get("kfp_run") == self.me["kfp_run"]
            lease = float(holder.get("lease_seconds") or self.lease_s)
            if not (gone or retried) and age < lease:
                where = f"host {holder.get('host', '?')}, pid {pid or '?'}, lease renewed {age:.0f}s ago"
                raise _busy(self.output, f"{where}; a dead one's lock expires after {lease:.0f}s")
            self.etag = self.store.put_if(self.uri, self._body(), etag=etag)
            if self.etag:
                why = (
                    "its process is gone"
                    if gone
                    else "an earlier attempt of this pipeline task"
                    if retried
                    else f"not renewed for {age:.0f}s"
                )
                log.warning(
                    "%s: took over the merge lock of host %s pid %s (%s)",
                    self.output,
                    holder.get("host", "?"),
                    pid,
                    why,
                )
                return
        raise _busy(self.output, "it took the lock as this one tried")

    def _check_conditions_are_honoured(self) -> None:
        """A second create of the lock must fail; a server that ignores If-None-Match cannot lock."""
        endpoint = getattr(self.store, "settings", None)
        key = getattr(endpoint, "endpoint", "")
        if key in _UNCHECKED:
            return
        again = self.store.put_if(self.uri, self._body())
        if again is not None:
            self.etag = again
            _UNCHECKED.add(key)
            log.warning(
                "the S3 server %s ignores conditional writes (If-None-Match): two merges of one "
                "output at once cannot be refused there",
                key,
            )

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                etag = self.store.put_if(self.uri, self._body(), etag=self.etag)
            except Exception as exc:  # an S3 outage: try again until the lease is past
                log.warning("%s: could not renew the merge lock (%s)", self.output, exc)
                continue
            if etag is None:
                seen = self.store.stat(self.uri)
                if seen and self._holder().get("owner") == self.me["owner"]:
                    etag = seen[0]  # our renewal went through; its answer was lost
                else:
                    self.lost = True
                    return
            self.etag = etag

    def check(self) -> None:
        if self.lost:
            raise TeacherLMError(
                f"{self.output}: this merge stalled past its {self.lease_s:.0f}s lease and another merge took "
                "the lock; this one stops without writing the manifest (the other writes it)"
            )

    def _release(self) -> None:
        if self.etag is None or self.lost:
            return
        try:
            seen = self.store.stat(self.uri)
            if seen is not None and seen[0] == self.etag:
                self.store.delete(self.uri)
        except Exception as exc:  # never hide the merge's own outcome; the lease ends it anyway
            log.warning(
                "%s: could not remove the merge lock (%s); it expires after %.0fs",
                self.output,
                exc,
                self.lease_s,
            )
