"""What is a secret, and how it is kept out of everything teacherlm writes.

Three precise rules, applied wherever anything is written (MLflow params and tags, ``plan.json``,
``manifest.json``, dataset and model cards, logs):

1. **Secret names.** A name (an MLflow parameter or tag, an environment variable) is secret when one
   of its words is ``secret``, ``password``, ``passwd``, ``passphrase``, ``token``, ``credential(s)``,
   ``apikey``, ``auth`` or ``authorization``, or two consecutive words are ``api|access|secret|
   private|client|signing`` + ``key``. Words are split at ``_ - . /``, spaces and camelCase, so
   ``max_new_tokens``, ``tokens_per_second`` and ``author`` are not secret (``tokens`` and
   ``author`` are other words). A name ending in ``env``, ``var`` or ``file`` names *where* a
   secret is (``api_key_env = "OPENAI_API_KEY"``) and is not one, nor is a variable in
   :data:`REFERENCES` (the name of a Kubernetes Secret, e.g. ``TEACHERLM_S3_SECRET``).
2. **Credentials in URLs.** ``scheme://user:password@host`` loses its user info (``scheme://host``)
   and a query parameter with a secret name loses its value, anywhere in any string. The user info
   ends where a URL parser ends it, at the authority's last ``@`` (a password may hold ``@``).
3. **Known secret values.** The values of secret-named environment variables, and the user info
   (``user:password`` and the password) of any URL in any environment variable, are masked: a
   string equal to one is redacted whatever its length; inside a longer string only values of at
   least :data:`MIN_EMBEDDED` characters are masked, so a short access key (``minio``) does not
   hide the endpoint (``http://minio:9000``) that merely contains it. Each is masked in every form
   it travels in (:func:`secret_forms`): as is, base64 (an HTTP Basic ``Authorization`` header a
   server echoes back) and URL-encoded.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Mapping
from itertools import pairwise
from typing import Any
from urllib.parse import quote, unquote

__all__ = [
    "MIN_EMBEDDED",
    "REDACTED",
    "REFERENCES",
    "RedactingFilter",
    "install",
    "is_secret_name",
    "known_secrets",
    "redact_document",
    "redact_params",
    "redact_text",
    "secret_forms",
    "strip_url_credentials",
    "url_credentials",
]

REDACTED = "<redacted>"
MIN_EMBEDDED = 8  # shorter secrets are masked only where they are the whole value
MLFLOW_PARAM_LIMIT = 6000  # MLflow's param value limit, in characters

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "password",
        "passwd",
        "passphrase",
        "token",
        "credential",
        "credentials",
        "apikey",
        "auth",
        "authorization",
    }
)
_KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "client", "signing"})
_REFERENCE_SUFFIXES = frozenset({"env", "var", "file"})
REFERENCES = frozenset({"TEACHERLM_S3_SECRET"})  # names of Kubernetes Secrets, not secrets
# scheme://user[:password]@ ; the authority ends at '/', '?', '#' or whitespace, and its user info at
# its last '@' (as urllib.parse.urlsplit reads it): a password may hold '@'.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/\s?#]+)@")
_QUERY_PARAM = re.compile(r"(?P<sep>[?&])(?P<name>[^=&#\s]+)=(?P<value>[^&#\s]*)")


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(str(name))]


def is_secret_name(name: str) -> bool:
    """Whether ``name`` names a secret (rule 1 of the module docstring), e.g. ``AWS_SECRET_ACCESS_KEY``."""
    words = _words(name)
    if str(name) in REFERENCES or not words or words[-1] in _REFERENCE_SUFFIXES:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(a in _KEY_QUALIFIERS and b == "key" for a, b in pairwise(words))


def strip_url_credentials(text: str) -> str:
    """``text`` with the user info of every URL removed and secret-named query values redacted (rule 2)."""
    text = _USERINFO.sub(r"\g<scheme>", text)
    if "?" not in text and "&" not in text:
        return text

    def query(m: re.Match[str]) -> str:
        if is_secret_name(m["name"]) or m["name"].lower() in {"x-amz-signature", "x-amz-credential", "sig"}:
            return f"{m['sep']}{m['name']}={REDACTED}"
        return m[0]

    return _QUERY_PARAM.sub(query, text)


def url_credentials(text: str) -> list[str]:
    """The user info of every URL in ``text``: ``user:password`` and the password, as written and
    percent-decoded (how a client sends them)."""
    found: list[str] = []
    for m in _USERINFO.finditer(text):
        for info in {m["info"], unquote(m["info"])}:
            found.append(info)
            if ":" in info:
                found.append(info.partition(":")[2])
    return [v for v in found if v]


def secret_forms(value: str) -> list[str]:
    """``value`` as it may travel: as is, base64 (standard and URL-safe, with and without padding:
    HTTP Basic auth, Kubernetes Secrets) and percent-encoded."""
    raw = value.encode("utf-8", "surrogatepass")
    b64, url64 = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    return list(dict.fromkeys([value, b64, b64.rstrip("="), url64, url64.rstrip("="), quote(value, safe="")]))


def known_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every form (:func:`secret_forms`) of the values of secret-named environment variables and
    of the URL credentials in any environment variable, longest first (rule 3)."""
    env = os.environ if environ is None else environ
    values = {v.strip() for k, v in env.items() if is_secret_name(k) and v.strip()}
    values |= {c for v in env.values() if "@" in v for c in url_credentials(v)}
    return sorted({form for v in values for form in secret_forms(v)}, key=len, reverse=True)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with URL credentials stripped and known secret values masked (rules 2 and 3)."""
    secrets = known_secrets() if secrets is None else secrets
    if text.strip() in secrets:
        return REDACTED
    for value in secrets:
        if len(value) >= MIN_EMBEDDED and value in text:
            text = text.replace(value, REDACTED)
    return strip_url_credentials(text)


def redact_document(obj: Any, secrets: list[str] | None = None) -> Any:
    """A JSON-like document (plan, manifest, card data) with every string :func:`redact_text`-ed.

    Keys are left alone: a document's keys are its structure (a dataset may well have a column
    named ``password``), and teacherlm's configs hold secrets only by reference
    (``api_key_env``). Returns a new value; ``obj`` is not changed.
    """
    secrets = known_secrets() if secrets is None else secrets
    if isinstance(obj, Mapping):
        return {k: redact_document(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_document(v, secrets) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    return obj


def redact_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Flatten ``params`` to MLflow params (``a.b`` keys, string values of at most 6,000
    characters) with every rule applied."""
    secrets = known_secrets()
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
            return
        last = prefix.rsplit(".", 1)[-1]
        text = (
            REDACTED if is_secret_name(last) and value not in (None, "") else redact_text(str(value), secrets)
        )
        out[prefix] = text[:MLFLOW_PARAM_LIMIT]

    walk("", params)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that applies :func:`redact_text` to every record's formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not format: left for logging to report
        return
    secrets = known_secrets()
    clean = redact_text(message, secrets)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:  # the traceback as a handler would print it
        record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info), secrets)


def install() -> None:
    """Redact every log record and uncaught traceback of this process, whoever logs it.

    A log record factory (not a handler filter: handlers come and go, and a KFP component's
    process never runs the CLI that adds one) cleans each record's message and traceback when it
    is made, so MLflow's, urllib3's and Kubernetes clients' lines are covered too; an uncaught
    exception's traceback (a component that fails) is printed redacted. Installed on
    ``import teacherlm_core``; a second call does nothing.
    """
    import sys
    import traceback

    factory = logging.getLogRecordFactory()
    if getattr(factory, "_teacherlm_redacting", False):
        return

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _redact_record(record)
        return record

    redacting_factory._teacherlm_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting_factory)
    previous_hook = sys.excepthook

    def redacting_hook(kind, exc, tb) -> None:
        if previous_hook is not sys.__excepthook__:
            return previous_hook(kind, exc, tb)
        sys.stderr.write(redact_text("".join(traceback.format_exception(kind, exc, tb))))

    sys.excepthook = redacting_hook
