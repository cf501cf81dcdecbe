"""What a followed job's namespace says since the last poll: its events (:class:`EventFeed`) and a pod's
log lines (:class:`LogCursor`), each returned once, at a bounded cost per poll however long the job runs."""

from __future__ import annotations

from collections import deque


class EventFeed:
    """The namespace's events, each returned once: one list, then watches from the last ``resourceVersion``.

    Each :meth:`new` after the first is a watch that ends after at most ``wait_s`` seconds, so a
    poll reads only the events that came since the last one (never the whole namespace again). A
    ``resourceVersion`` the server no longer keeps (410 Gone) makes it list again, skipping the
    events it already returned (the uids of the last :data:`SEEN` are kept).
    """

    SEEN = 10_000

    def __init__(self, core, namespace: str, wait_s: int = 1):
        self.core, self.namespace, self.wait_s = core, namespace, wait_s
        self.resource_version: str | None = None
        self.seen: deque[str] = deque(maxlen=self.SEEN)

    def _fresh(self, items) -> list:
        out = [ev for ev in items if (ev.metadata.uid or ev.metadata.name) not in self.seen]
        self.seen.extend(ev.metadata.uid or ev.metadata.name for ev in out)
        return out

    def new(self) -> list:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        if self.resource_version is None:
            listed = self.core.list_namespaced_event(self.namespace)
            self.resource_version = listed.metadata.resource_version
            return self._fresh(listed.items)
        items = []
        stream = watch.Watch().stream(
            self.core.list_namespaced_event,
            self.namespace,
            resource_version=self.resource_version,
            timeout_seconds=self.wait_s,
        )
        try:
            for change in stream:
                ev = change["object"]
                self.resource_version = ev.metadata.resource_version or self.resource_version
                if change["type"] in ("ADDED", "MODIFIED"):
                    items.append(ev)
        except ApiException as exc:
            if exc.status != 410:
                raise
            self.resource_version = None  # too old: list again
            return self._fresh(items) + self.new()
        return self._fresh(items)


class LogCursor:
    """The lines a container logged since the last read, each returned once.

    The first read takes the last :data:`FIRST_LINES` lines (a follower attaching to a job that
    has run for days does not read days of log); later reads ask for ``sinceTime`` = the last
    line's timestamp (the server's own clock, so no skew) and drop the lines already returned at
    exactly that time. Each read is capped at :data:`MAX_BYTES`. ``sinceTime`` is in the Kubernetes
    API but not in the Python client's ``read_namespaced_pod_log``, hence the plain ``call_api``.
    """

    FIRST_LINES = 1000
    MAX_BYTES = 8 * 2**20

    def __init__(self, core, pod: str, namespace: str, container: str):
        self.core, self.pod, self.namespace, self.container = core, pod, namespace, container
        self.stamp: str | None = None  # the last line's timestamp, as the server wrote it
        self.last: str | None = None  # its sort key
        self.at_last = 0  # lines returned with exactly that timestamp

    @staticmethod
    def _key(stamp: str) -> str:
        """A sortable form of an RFC 3339 timestamp (``...05.5Z``: fractions padded to nanoseconds)."""
        whole, _, frac = stamp.rstrip("Z").partition(".")
        return f"{whole}.{frac:0<9}"

    def _read(self) -> str:
        query: list[tuple[str, str]] = [
            ("container", self.container),
            ("timestamps", "true"),
            ("limitBytes", str(self.MAX_BYTES)),
        ]
        query.append(
            ("tailLines", str(self.FIRST_LINES)) if self.stamp is None else ("sinceTime", self.stamp)
        )
        return self.core.api_client.call_api(
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            "GET",
            path_params={"namespace": self.namespace, "name": self.pod},
            query_params=query,
            header_params={"Accept": "text/plain"},
            response_type="str",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=True,
        )

    def new_lines(self) -> list[str]:
        from kubernetes.client.exceptions import ApiException

        try:
            text = self._read()
        except ApiException:  # the container has not started, or its log is gone
            return []
        out, again = [], 0  # again: lines of this read stamped like the last one returned before
        for raw in (text or "").splitlines():
            stamp, _, line = raw.partition(" ")
            key = self._key(stamp)
            if self.last is not None and key < self.last:
                continue
            if key == self.last:
                again += 1
                if again <= self.at_last:
                    continue
                self.at_last += 1
            else:
                self.stamp, self.last, self.at_last, again = stamp, key, 1, 1
            out.append(line)
        return out


def pod_log(core, pod: str, namespace: str, container: str, tail_lines: int) -> str:
    from kubernetes.client.exceptions import ApiException

    try:
        return core.read_namespaced_pod_log(pod, namespace, container=container, tail_lines=tail_lines)
    except ApiException:  # the container has not started, or its log is gone
        return ""
