"""An OpenAI-compatible completions client: a running ``vllm serve`` or any compatible endpoint.

Requests go out concurrently (at most ``max_concurrency`` in flight) and are retried with
exponential backoff on connection errors, 429 and 5xx (tenacity). The API key is read from an
environment variable (``OPENAI_API_KEY`` by default) and never logged or stored.

It has no ``open_stream``: :func:`~teacherlm_core.engines.open_stream` serves it with one
``generate`` call a poll, every request queued since the last one sent concurrently (the simplest
correct behaviour: each poll still waits for its slowest request, as a part did before streams).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence

from ..errors import EngineError
from ..redaction import known_secrets, redact_text, secret_forms, strip_url_credentials, url_credentials
from .base import Generation, GenerationParams
from .encoding import LoglikelihoodRequest

__all__ = ["OpenAIEngine", "RetryableHTTPError"]


class RetryableHTTPError(Exception):
    """A 429 or 5xx answer: worth another try after a pause."""


class OpenAIEngine:
    """``POST {base_url}/completions`` for each prompt.

    Args:
        model: the model name the server serves.
        base_url: e.g. ``http://vllm:8000/v1``.
        api_key_env: the environment variable that holds the API key (may be unset).
        max_concurrency: requests in flight at once.
        max_attempts: tries per request (429/5xx/connection errors), with exponential backoff.
        timeout: seconds per request.
        backoff: first pause between tries, in seconds (doubles, with jitter, up to 20 s).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 32,
        max_attempts: int = 6,
        timeout: float = 300.0,
        backoff: float = 0.5,
        revision: str | None = None,
        **_ignored,
    ):
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise EngineError(
                "the openai engine needs --base-url (or OPENAI_BASE_URL), e.g. http://vllm:8000/v1"
            )
        self.model_name, self.revision = model, revision
        self.base_url = base_url.rstrip("/")
        self.where = strip_url_credentials(self.base_url)  # for messages: never the URL's user info
        self._api_key_env = api_key_env
        self.max_concurrency, self.max_attempts, self.timeout, self.backoff = (
            max_concurrency,
            max_attempts,
            timeout,
            backoff,
        )

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self._api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _clean(self, text: str) -> str:
        """``text`` (what a server answered, an exception) without any credential this engine sends, in
        any encoding: the API key and the URL's user info (httpx sends it as base64 Basic auth)."""
        own = [*url_credentials(self.base_url), os.environ.get(self._api_key_env, "").strip()]
        forms = {*known_secrets(), *(f for v in own if v for f in secret_forms(v))}
        return redact_text(text, sorted(forms, key=len, reverse=True))

    def _snippet(self, text: str, n: int = 300) -> str:
        """The first ``n`` characters of a server's answer, cleaned before it is cut (a credential
        cut in two would no longer be recognised)."""
        return self._clean(text[: 100 * n])[:n]

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerationParams | Sequence[GenerationParams],
        progress: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        plist = list(params) if isinstance(params, Sequence) else [params] * len(prompts)
        if len(plist) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(plist)} params")
        return asyncio.run(self._generate_all(list(prompts), plist, progress))

    async def _generate_all(self, prompts, plist, progress) -> list[Generation]:
        import httpx

        limit = asyncio.Semaphore(self.max_concurrency)
        limits = httpx.Limits(
            max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
        )
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits, headers=self._headers()) as client:

            async def one(prompt: str, p: GenerationParams) -> Generation:
                async with limit:
                    result = await self._complete(client, prompt, p)
                if progress:
                    progress(1)
                return result

            return list(await asyncio.gather(*(one(x, p) for x, p in zip(prompts, plist, strict=True))))

    async def _complete(self, client, prompt: str, p: GenerationParams) -> Generation:
        import httpx
        from tenacity import (
            AsyncRetrying,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential_jitter,
        )

        body = {
            "model": self.model_name,
            "prompt": prompt,
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p if p.temperature > 0 else 1.0,
        }
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop:
            body["stop"] = list(p.stop)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((RetryableHTTPError, httpx.TransportError)),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(initial=self.backoff, max=20, jitter=self.backoff),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    resp = await client.post(f"{self.base_url}/completions", json=body)
                    if resp.status_code == 429 or resp.status_code >= 500:
                        raise RetryableHTTPError(f"HTTP {resp.status_code}")
                    if resp.status_code in (400, 413, 422):  # this request alone (e.g. too long)
                        return Generation(
                            text="",
                            num_tokens=0,
                            finish_reason="error",
                            error=f"the server refused the request: HTTP {resp.status_code}: {self._snippet(_message(resp))}",
                        )
                    if resp.status_code != 200:
                        raise EngineError(
                            f"{self.where}/completions answered HTTP {resp.status_code}: {self._snippet(resp.text)}"
                        )
        except (RetryableHTTPError, httpx.TransportError) as exc:
            raise EngineError(
                self._clean(f"{self.where}/completions failed after {self.max_attempts} attempts: {exc!r}")
            ) from exc
        return self._completion(resp)

    def _completion(self, resp) -> Generation:
        """The generation in a 200 answer; an answer that is not a completion names the endpoint and
        what came back. Retrying would not help either: the same URL answers the same way."""
        try:
            data = resp.json()
        except ValueError:  # e.g. a proxy's HTML login page
            kind = resp.headers.get("content-type", "no content type")
            raise EngineError(
                f"{self.where}/completions answered HTTP 200 with {kind}, not a JSON completion "
                f"(a proxy or login page? check --base-url): {self._snippet(resp.text, 200)!r}"
            ) from None
        choices = data.get("choices") if isinstance(data, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict) or not isinstance(choice.get("text"), str):
            what = "no choices" if choice is None else "a choice without text"
            return Generation(  # this request's problem: its record is quarantined with the reason
                text="",
                num_tokens=0,
                finish_reason="error",
                error=f"the server answered {what}: {self._snippet(json.dumps(data), 200)}",
            )
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        tokens = usage.get("completion_tokens")
        return Generation(
            text=choice["text"],
            num_tokens=tokens
            if isinstance(tokens, int) and tokens >= 0
            else 0,  # null: the text is still good
            finish_reason=choice.get("finish_reason") or "stop",
        )

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], progress=None) -> list[float]:
        raise EngineError("the openai engine generates only; evaluate with --engine vllm or hf")


def _message(resp) -> str:
    """The server's error message (OpenAI's ``{"error": {"message"}}`` or vLLM's ``{"message"}``), else the body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text
    err = body.get("error", body) if isinstance(body, dict) else body
    return str(err.get("message", err) if isinstance(err, dict) else err)
