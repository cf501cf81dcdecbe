"""A real headless browser for page tests: Debian's ``chromium`` (``scripts/ci-tools.sh`` installs it).

A missing browser fails the test that needs it, never skips it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["chromium", "dump_dom", "screenshot"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    raise RuntimeError("no chromium on PATH: run `bash scripts/ci-tools.sh` (it installs Debian's chromium)")


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)


def dump_dom(url: str, wait_ms: int = 0) -> str:
    """The DOM after the page has loaded (and run its scripts for ``wait_ms`` of virtual time)."""
    extra = [f"--virtual-time-budget={wait_ms}"] if wait_ms else []
    return _run(*extra, "--dump-dom", url).stdout


def screenshot(url: str, path: str | Path, width: int = 1280, height: int = 2000, wait_ms: int = 0) -> Path:
    extra = [f"--virtual-time-budget={wait_ms}"] if wait_ms else []
    _run(*extra, f"--screenshot={path}", f"--window-size={width},{height}", url)
    return Path(path)
