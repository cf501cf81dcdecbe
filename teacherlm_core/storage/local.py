"""The local backend: a directory on this host, written atomically, readable by the team.

Writes go to a temp file in the target directory, then ``os.replace``: a file is there complete or
not at all. New files and folders get the modes ``open`` and ``mkdir`` would give (the umask's),
so outputs on a shared disk stay readable; :func:`remove_stale_temps` clears what a killed writer left.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import StorageError


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


def remove_stale_temps(folder: str | os.PathLike[str], prefix: str) -> int:
    """Delete ``folder/<prefix><pid>-*`` temp files and dirs left by processes of this host that are
    gone (a kill -9 mid-write); a live writer's temps are kept. Returns how many were removed."""
    removed = 0
    for path in Path(folder).glob(f"{prefix}*"):
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed += 1
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (one of another user counts: it cannot be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
