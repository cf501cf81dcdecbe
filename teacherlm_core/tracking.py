"""MLflow tracking: one parent run per pipeline run, a nested run per stage.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set, else a local SQLite store under the work
dir (``$TEACHERLM_WORKDIR``, default ``./teacherlm-work``). Tracking never stops the work: if
the server is unreachable, or any MLflow call fails, the tracker logs one warning and turns
itself off. Whether the server answers is probed once per process (:func:`tracking_reachable`,
a few seconds): with the server down, every tracking call of the process is skipped at once, so
no stage holds its GPUs through MLflow's minutes of retries. Params and tags are redacted before logging (:mod:`teacherlm_core.redaction`: secret
names, URL credentials, known secret values).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

__all__ = [
    "EXPERIMENT",
    "METRIC_NAMES_TAG",
    "PARENT_ENV",
    "TRACKING_ENV",
    "Tracker",
    "default_tracking_uri",
    "guarded",
    "metric_key",
    "metric_keys",
    "pipeline_parent_run",
    "redact",
    "tracking_reachable",
    "workdir",
]

log = logging.getLogger(__name__)

PARENT_ENV = "TEACHERLM_MLFLOW_PARENT_RUN_ID"  # the parent run a process's runs nest under
EXPERIMENT = "teacherlm"  # stages and recipes of one pipeline run share one parent, so one experiment
PIPELINE_RUN_TAG = "teacherlm.kfp_run_id"


def workdir() -> Path:
    """The local work dir (artifacts, MLflow store) of the embedded default."""
    return Path(os.environ.get("TEACHERLM_WORKDIR", "teacherlm-work")).resolve()


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else the local SQLite store ``<workdir>/mlflow.db`` (made on first use,
    by :func:`tracking_reachable`, so naming it creates nothing)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{workdir() / 'mlflow.db'}"


def _ensure_sqlite_store(db: Path) -> None:
    """Create the local store ``db`` once, whole: migrated to the current schema in a temp file
    under a lock, then renamed into place.

    MLflow creating it in place leaves it half-migrated for good when two first processes race
    or a Ctrl-C lands during the migration (every later run: "tracking is off"); here a second
    process waits for the first, and an interrupted creation leaves only a temp file behind.
    """
    if db.exists():
        return
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(f".{db.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released however this process ends
        if db.exists():  # another process made it meanwhile
            return
        # a name never used before: MLflow caches an engine per database URI
        tmp = db.with_name(f".{db.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
        for stale in db.parent.glob(f".{db.name}.*.tmp"):  # of creations interrupted before
            stale.unlink(missing_ok=True)
        try:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            # MLflow says "Creating initial MLflow database tables..." at INFO on every first run: not news.
            quiet = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "alembic")]
            levels = [q.level for q in quiet]
            for q in quiet:
                q.setLevel(logging.WARNING)
            try:
                store = SqlAlchemyStore(f"sqlite:///{tmp}", (db.parent / "mlartifacts").as_uri())
            finally:
                for q, level in zip(quiet, levels, strict=True):
                    q.setLevel(level)
            store.engine.dispose()
            os.replace(tmp, db)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


TRACKING_ENV = "TEACHERLM_TRACKING"  # "off": no MLflow call at all in this process (`teacherlm --no-track`)
PROBE_TIMEOUT_S = 5.0  # one GET /health per process and server; a live server answers in milliseconds
_REACHABLE: dict[str, bool] = {}


def tracking_reachable(uri: str | None = None) -> bool:
    """Whether the tracking server at ``uri`` (default: :func:`default_tracking_uri`) answers.

    Probed once per process and URI: ``GET /health`` with a :data:`PROBE_TIMEOUT_S` timeout and
    no retries; any HTTP answer counts (a server behind auth answers 401). A server that does not
    answer turns tracking off for the whole process with one warning. A local store (SQLite, a
    directory) is always reachable. Also sets MLflow's fast-fail HTTP settings (2 retries, 15 s
    a request) where the environment sets none, for every MLflow call of the process. With
    ``TEACHERLM_TRACKING=off`` (``teacherlm --no-track``) it is ``False`` without a probe.
    """
    if os.environ.get(TRACKING_ENV, "").lower() == "off":  # asked for: no store is created or probed
        return False
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    uri = uri or default_tracking_uri()
    if uri not in _REACHABLE:
        _REACHABLE[uri] = _answers(uri)
    return _REACHABLE[uri]


def _answers(uri: str) -> bool:
    import urllib.error
    import urllib.request

    from .redaction import strip_url_credentials

    if uri.startswith("sqlite:///"):  # the local store: made once, whole, before any process uses it
        try:
            _ensure_sqlite_store(Path(uri[len("sqlite:///") :]))
        except Exception as exc:
            log.warning("MLflow store %s cannot be created (%s); tracking is off for this process", uri, exc)
            return False
        return True
    if not uri.startswith(("http://", "https://")):
        return True
    where = strip_url_credentials(uri).rstrip("/")  # /health needs no credentials
    try:
        urllib.request.urlopen(f"{where}/health", timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError) as exc:
        log.warning("MLflow at %s does not answer (%s); tracking is off for this process", where, exc)
        return False
    return True


def guarded(what: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or ``None`` without a call when tracking is off or the server is
    down (:func:`tracking_reachable`), or with one warning when the call fails: tracking never stops
    the work. The guard of MLflow calls made outside a run handle (:mod:`~teacherlm_core.lineage`);
    :class:`Tracker` guards its own the same way."""
    if not tracking_reachable():
        return None
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        log.warning("MLflow %s failed (%s: %s); continuing without it", what, type(exc).__name__, exc)
        return None


def redact(params: Mapping[str, Any]) -> dict[str, str]:
    """``params`` flattened to MLflow params with secrets redacted (:func:`~teacherlm_core.redaction.redact_params`)."""
    from .redaction import redact_params

    return redact_params(params)


METRIC_NAMES_TAG = "teacherlm.metric_names"  # JSON {logged key: the name it stands for}, where any differ
_METRIC_KEY_LIMIT = 250  # MLflow's longest entity key
_NOT_IN_A_KEY = re.compile(r"[^\w.\- /]")  # what MLflow accepts in a metric key on every OS


def metric_key(name: str) -> str:
    """``name`` as a key MLflow accepts, the same way everywhere (task names come from the data).

    Characters MLflow refuses become ``_``, path segments ``.``/``..`` and empty ones are dropped
    (MLflow refuses a key that normalises to another path), and a key that had to change ends in
    ``-`` and 8 hex digits of the name's sha256, so two names never share one key; at most 250
    characters. A name MLflow accepts as it is stays unchanged.
    """
    key = "/".join(seg for seg in _NOT_IN_A_KEY.sub("_", name).split("/") if seg not in ("", ".", ".."))
    if key == name and len(key) <= _METRIC_KEY_LIMIT:
        return key
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{key[: _METRIC_KEY_LIMIT - 9].rstrip('/')}-{digest}"


def metric_keys(metrics: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """``(numeric metrics under MLflow-safe keys, {key: original name} for each key that differs)``."""
    clean: dict[str, float] = {}
    renamed: dict[str, str] = {}
    for name, value in metrics.items():
        if isinstance(value, (int, float)):
            key = metric_key(str(name))
            clean[key] = float(value)
            if key != name:
                renamed[key] = str(name)
    return clean, renamed


class Tracker:
    """One MLflow run with nested stage runs, through MLflow's client API; failures degrade to warnings.

    The run is a new one (in ``experiment``, a child of ``parent_run_id`` or of the run in
    ``$TEACHERLM_MLFLOW_PARENT_RUN_ID``), started on ``__enter__`` and ended on ``__exit__``
    (``FAILED`` on an exception), or an existing one held by id (:meth:`attach`), which its owner
    ends. Runs are held by id, not by MLflow's per-process active-run stack, so a recipe may open
    its own runs while a stage's is open. Every call goes through one guard: with tracking off, or
    the server down (:func:`tracking_reachable`), nothing is called; the first failing call logs one
    warning and turns the handle off. Params and tags are redacted (:func:`redact`).

    Example:
        with Tracker("teacherlm", run_name="eval") as t:
            t.log_params({"model": "tiny"})
            with t.stage("rank-eval"):
                t.log_metrics({"accuracy": 0.5})
    """

    def __init__(
        self,
        experiment: str = EXPERIMENT,
        run_name: str | None = None,
        *,
        tracking_uri: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        enabled: bool = True,
    ):
        self.experiment = experiment
        self.run_name = run_name
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.parent_run_id = parent_run_id or os.environ.get(PARENT_ENV) or None
        self.tags = dict(tags or {})
        self.enabled = enabled
        self.run_id: str | None = None  # the run this handle was opened on
        self.experiment_id: str | None = None
        self._open: list[str] = []  # the run and its open stage runs, innermost last: where calls log
        self._owned: list[str] = []  # the runs this handle started, which it ends

    @classmethod
    def attach(cls, run_id: str | None) -> Tracker:
        """A handle on the existing run ``run_id`` (``None``: a handle that does nothing); not ended here."""
        handle = cls(enabled=bool(run_id))
        if run_id:
            handle.run_id = run_id
            handle._open.append(run_id)
        return handle

    def _guard(self, what: str, fn, *args, **kwargs):
        if not self.enabled:
            return None
        if not tracking_reachable(self.tracking_uri):  # probed once per process: seconds, not minutes
            self.enabled = False
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # tracking must never stop the work
            log.warning(
                "MLflow %s failed (%s: %s); tracking is off for the rest of this run",
                what,
                type(exc).__name__,
                exc,
            )
            self.enabled = False
            return None

    def _client(self):
        import mlflow

        return mlflow.MlflowClient(self.tracking_uri)

    def __enter__(self) -> Tracker:
        if self.run_id is None:
            self._guard("start", self._start)
        return self

    def _start(self) -> None:
        client = self._client()
        if self.tracking_uri.startswith("sqlite:///"):
            _ensure_sqlite_store(Path(self.tracking_uri[len("sqlite:///") :]))
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            location = None
            if self.tracking_uri.startswith("sqlite:///"):
                # A local store keeps its artifacts beside the database, not in ./mlruns of the CWD.
                location = (Path(self.tracking_uri[len("sqlite:///") :]).parent / "mlartifacts").as_uri()
            with suppress(Exception):  # created meanwhile by a concurrent stage
                client.create_experiment(self.experiment, artifact_location=location)
            experiment = client.get_experiment_by_name(self.experiment)
        self.experiment_id = experiment.experiment_id
        self.run_id = self._create(self.run_name, self.parent_run_id, self.tags)

    def _create(self, name: str | None, parent: str | None, tags: Mapping[str, str]) -> str:
        """A new run (the tags MLflow's ``start_run`` would add: user, source, git commit)."""
        from mlflow.tracking.context.registry import resolve_tags

        tags = redact(tags) | ({"mlflow.parentRunId": parent} if parent else {})
        run_id = (
            self._client().create_run(self.experiment_id, run_name=name, tags=resolve_tags(tags)).info.run_id
        )
        self._open.append(run_id)
        self._owned.append(run_id)
        return run_id

    def _end(self, run_id: str, status: str) -> None:
        self._open.remove(run_id)
        self._owned.remove(run_id)
        self._guard("end", self._client().set_terminated, run_id, status)

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "FAILED" if exc_type else "FINISHED"
        for run_id in reversed(list(self._owned)):
            self._end(run_id, status)

    @contextmanager
    def stage(self, name: str, params: Mapping[str, Any] | None = None) -> Iterator[Tracker]:
        """A nested run for one stage: the calls made meanwhile log to it."""
        started = None
        if self._open:
            if self.experiment_id is None:
                run = self._guard("get run", self._client().get_run, self._open[-1])
                self.experiment_id = run.info.experiment_id if run else None
            if self.experiment_id is not None:
                started = self._guard("nested start", self._create, name, self._open[-1], {})
        if params:
            self.log_params(params)
        failed = False
        try:
            yield self
        except BaseException:
            failed = True
            raise
        finally:
            if started is not None:
                self._end(started, "FAILED" if failed else "FINISHED")

    def _log(self, what: str, method: str, *args, **kwargs) -> None:
        if self._open:
            self._guard(what, lambda: getattr(self._client(), method)(self._open[-1], *args, **kwargs))

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self._log("log_params", "log_batch", params=[Param(k, v) for k, v in redact(params).items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log numeric ``metrics``; names MLflow would refuse go under :func:`metric_key`, the
        originals in the :data:`METRIC_NAMES_TAG` tag (one bad task name never drops the others)."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        clean, renamed = metric_keys(metrics)  # a name MLflow refuses would fail the whole batch
        tags = [RunTag(METRIC_NAMES_TAG, json.dumps(renamed)[:8000])] if renamed else []
        self._log(
            "log_metrics",
            "log_batch",
            metrics=[Metric(k, v, now, step or 0) for k, v in clean.items()],
            tags=tags,
        )

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self._log("log_artifact", "log_artifact", str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self._log("set_tags", "log_batch", tags=[RunTag(k, v) for k, v in redact(tags).items()])


def pipeline_parent_run(pipeline_run_id: str, experiment: str = EXPERIMENT) -> str:
    """The MLflow parent run of pipeline run ``pipeline_run_id``: found by its tag, else created.

    Stages that start at the same moment may both create one; each then picks the oldest and the
    loser deletes its own, so all stages end up under one parent. Raises what MLflow raises.
    """
    import mlflow

    client = mlflow.MlflowClient(default_tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    query = f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline_run_id}' and tags.`teacherlm.parent` = 'true'"
    found = client.search_runs([exp_id], query, order_by=["attributes.start_time ASC"])
    if found:
        return found[0].info.run_id
    tags = {PIPELINE_RUN_TAG: pipeline_run_id, "teacherlm.parent": "true"}
    mine = client.create_run(exp_id, run_name=f"kfp {pipeline_run_id}", tags=tags).info.run_id
    found = client.search_runs(
        [exp_id], query, order_by=["attributes.start_time ASC", "attributes.run_id ASC"]
    )
    winner = found[0].info.run_id if found else mine
    if winner != mine:
        client.delete_run(mine)
    else:  # nothing ends it later: it only groups the stages' runs
        client.set_terminated(mine, "FINISHED")
    return winner
