"""Log-likelihood requests as token ids, exactly as lm-evaluation-harness 0.4.13's HF backend makes them.

No special tokens beyond the tokenizer's own; ``context + continuation`` is encoded as one string
and split at the context's token count (trailing spaces of the context move to the continuation
first), see :func:`encode_pair`. :func:`encode_requests` gives the same ids for many requests at
once, tokenising each distinct text once in batch calls.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "EncodedRequest",
    "LoglikelihoodRequest",
    "encode_pair",
    "encode_requests",
    "tokens",
    "tokens_batch",
]

_TAIL_MARGIN = 64  # tokens past the window kept when a long context is cut before tokenising
_BATCH = 4096  # texts per batch call of the tokenizer: bounds the memory of one call


@dataclass(frozen=True)
class LoglikelihoodRequest:
    context: str
    continuation: str


@dataclass
class EncodedRequest:
    """A request as token ids, plus the model input lm-eval would build for it."""

    context: list[int]
    continuation: list[int]
    inputs: list[int] = field(default_factory=list)


@functools.lru_cache(maxsize=16)
def _tokenizer_facts(tokenizer) -> tuple[str | None, int]:
    """``(prefix text, longest token)``: the text of the token lm-eval treats as the sequence prefix
    (BOS, else EOS; ``None`` if neither), and the most characters one token can stand for (its
    stored form is never shorter than the text it decodes to)."""
    prefix_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    prefix = tokenizer.decode(prefix_id) if prefix_id is not None else None
    return prefix, max(map(len, tokenizer.get_vocab()), default=1)


def tokens(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` as lm-evaluation-harness 0.4.13's ``HFLM.tok_encode`` makes them.

    The tokenizer's own special tokens are added (a BOS where the tokenizer adds one: Llama-2,
    Mistral, Gemma), unless ``text`` already starts with the BOS text.
    """
    prefix, _ = _tokenizer_facts(tokenizer)
    return tokenizer(text, add_special_tokens=not (prefix and text.startswith(prefix)))["input_ids"]


def tokens_batch(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """:func:`tokens` of every text, in a few batch calls of the tokenizer (the same ids as one call
    per text: a fast tokenizer encodes each text of a batch on its own when nothing is padded)."""
    prefix, _ = _tokenizer_facts(tokenizer)
    out: list[list[int]] = [[] for _ in texts]
    for special in (True, False):
        idx = [i for i, t in enumerate(texts) if (not (prefix and t.startswith(prefix))) == special]
        for start in range(0, len(idx), _BATCH):
            part = idx[start : start + _BATCH]
            ids = tokenizer([texts[i] for i in part], add_special_tokens=special)["input_ids"]
            for i, row in zip(part, ids, strict=True):
                out[i] = row
    return out


def _context_tail(tokenizer, context: str, max_length: int) -> str:
    """The end of a context long past the window, cut before tokenising, when it tokenises (in
    the tokens the window keeps) exactly as the whole context does; else the whole context.

    Memory and time then follow the window, not the record: a 20 MB question costs what its
    last few thousand characters do. The cut is checked by tokenising a cut twice as long: when
    both agree on the kept tokens, the cut point no longer matters.
    """
    _, longest = _tokenizer_facts(tokenizer)
    need = max_length + 1 + _TAIL_MARGIN
    size = need * longest  # chars: at least `need` tokens, since no token stands for more than `longest`
    if len(context) <= 2 * size:
        return context
    tail = context[-size:]
    ids = tokens(tokenizer, tail)
    kept = need - _TAIL_MARGIN
    if len(ids) >= need and ids[-kept:] == tokens(tokenizer, context[-2 * size :])[-kept:]:
        return tail
    return context


def _split(context: str, continuation: str) -> tuple[str, str]:
    """Trailing spaces of the context moved to the continuation, as lm-eval's ``_encode_pair`` does."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def _pair(ctx: list[int], whole: list[int], continuation: str, max_length: int | None) -> EncodedRequest:
    if not ctx:
        raise ValueError(f"cannot score {continuation!r} after an empty context")
    seq = ctx + whole[len(ctx) :]
    if max_length is not None:
        seq = seq[-(max_length + 1) :]
    return EncodedRequest(context=ctx, continuation=whole[len(ctx) :], inputs=seq[:-1])


def encode_pair(tokenizer, context: str, continuation: str, max_length: int | None = None) -> EncodedRequest:
    """Token ids of a (context, continuation) pair, split as lm-evaluation-harness 0.4.13 does.

    The context and ``context + continuation`` are tokenised with the tokenizer's special tokens
    (:func:`tokens`) and the whole is split at the context's token count. ``inputs`` is what the
    model reads: ``(context + continuation)[-(max_length + 1):][:-1]``; the continuation is scored
    at the last ``len(continuation)`` positions of ``inputs``. A continuation that merges into the
    context's last token (``(A`` one token) splits into no tokens and scores 0.0, as in lm-eval.
    A context far longer than ``max_length`` tokens is cut before tokenising (:func:`_context_tail`).

    Raises:
        ValueError: the context has no tokens.
    """
    context, continuation = _split(context, continuation)
    if max_length is not None:
        context = _context_tail(tokenizer, context, max_length)
    whole = tokens(tokenizer, context + continuation)
    return _pair(tokens(tokenizer, context), whole, continuation, max_length)


def encode_requests(
    tokenizer, requests: Sequence[LoglikelihoodRequest], max_length: int, engine: str
) -> list[EncodedRequest]:
    """:func:`encode_pair` of every request with the engine's ``max_length``; one warning for the truncated.

    Each distinct context and each distinct ``context + continuation`` is tokenised once, in batch
    calls (:func:`tokens_batch`): on multiple-choice data the context of a question is shared by
    all its letters. Every engine keeps the same last ``max_length`` input tokens
    (``context_window - 1``: vLLM must fit one more position to score the last token), so
    truncated requests score the same on each.

    Raises:
        ValueError: a context has no tokens.
    """
    pairs = [_split(r.context, r.continuation) for r in requests]
    tails: dict[str, str] = {}
    for context, _ in pairs:
        if context not in tails:
            tails[context] = _context_tail(tokenizer, context, max_length)
    pairs = [(tails[context], continuation) for context, continuation in pairs]
    texts = list(
        dict.fromkeys(t for context, continuation in pairs for t in (context, context + continuation))
    )
    ids = dict(zip(texts, tokens_batch(tokenizer, texts), strict=True))
    encoded = [_pair(ids[c], ids[c + k], k, max_length) for c, k in pairs]
    cut = sum(len(e.context) + len(e.continuation) - 1 > len(e.inputs) for e in encoded if e.continuation)
    merged = sum(not e.continuation for e in encoded)
    if merged:
        logging.getLogger(__name__).warning(
            "%s: %d of %d candidates merge into their context's last token (e.g. '(A' is one token of this "
            "tokenizer): they score 0.0, as in lm-evaluation-harness",
            engine,
            merged,
            len(encoded),
        )
    if cut:
        logging.getLogger(__name__).warning(
            "%s: %d of %d scoring requests are longer than the model's window; their contexts keep the "
            "last %d tokens (the same truncation on every engine)",
            engine,
            cut,
            len(encoded),
            max_length,
        )
    return encoded
