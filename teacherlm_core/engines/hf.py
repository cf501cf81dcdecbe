"""The transformers engine: the fallback on any machine, and the reference in tests.

``loglikelihood`` runs each distinct model input once: requests whose input is a prefix of
another request's input (for rank classification: every candidate letter of one question) share
one forward pass, and only the positions that are scored reach the LM head. On multiple-choice
data that is one forward pass per question instead of one per choice.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace

from .base import Generation, GenerationParams, load_tokenizer
from .encoding import EncodedRequest, LoglikelihoodRequest, encode_requests
from .streams import generate_through

__all__ = ["HFEngine", "HFStream", "shared_prefix_plan"]


def _holds_stop(text: str, stops: Sequence[str]) -> bool:
    return any(s in text for s in stops)


def _text_stop(tokenizer, prompt_width: int, stops: Sequence[str], eos: int | None):
    """A ``StoppingCriteria`` for ``model.generate`` that ends each row at its first stop string.

    ``stopped_at[row]`` is the number of tokens the row had generated when it stopped on a string
    (rows that did not are absent).
    """
    import torch
    from transformers import StoppingCriteria

    class TextStop(StoppingCriteria):
        def __init__(self) -> None:
            self.stopped_at: dict[int, int] = {}
            self.done: list[bool] | None = None

        def __call__(self, input_ids, scores, **kwargs):
            generated = input_ids[:, prompt_width:].tolist()
            if self.done is None:
                self.done = [False] * len(generated)
            for r, row in enumerate(generated):  # EOS ends a row on its own: no text to check after it
                if not self.done[r] and eos is not None and row and row[-1] == eos:
                    self.done[r] = True
            live = [r for r, d in enumerate(self.done) if not d]
            # Decoded as the returned text is (special tokens skipped): a row stops exactly where
            # cutting its full generation at the first stop string would cut it.
            # one decode a row: batch_decode of one row, or of rows of one token, may take the list
            # for a single sequence and return one string (seen: "zip() argument 2 is longer")
            texts = [tokenizer.decode(generated[r], skip_special_tokens=True) for r in live]
            for r, text in zip(live, texts, strict=True):
                if _holds_stop(text, stops):
                    self.done[r] = True
                    self.stopped_at[r] = len(generated[r])
            flags = torch.zeros(len(generated), dtype=torch.bool, device=input_ids.device)
            for r in self.stopped_at:
                flags[r] = True
            return flags

    return TextStop()


def _top_p_probs(logits, top_p: float):
    """Softmax of ``logits`` over the smallest set of tokens whose probability reaches ``top_p``
    (the most likely token always kept), as transformers' ``TopPLogitsWarper`` and vLLM do."""
    import torch

    probs = torch.softmax(logits, dim=-1)
    if top_p >= 1.0:
        return probs
    sorted_probs, order = torch.sort(probs, descending=True)
    drop = sorted_probs.cumsum(-1) - sorted_probs > top_p  # the tokens after the set reached top_p
    sorted_probs[drop] = 0.0
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


def shared_prefix_plan(inputs: Sequence[tuple[int, ...]]) -> dict[tuple[int, ...], tuple[int, ...]]:
    """Map every input to the longest input it is a prefix of (itself if none).

    In lexicographic order every extension of ``p`` directly follows ``p``, so one backward pass
    over the sorted distinct inputs resolves the chain.
    """
    keys = sorted(set(inputs))
    cover: dict[tuple[int, ...], tuple[int, ...]] = {}
    for i in range(len(keys) - 1, -1, -1):
        key = keys[i]
        nxt = keys[i + 1] if i + 1 < len(keys) else None
        cover[key] = cover[nxt] if nxt is not None and nxt[: len(key)] == key else key
    return cover


def _scored_logits(model, ids, where: list[tuple[int, int]]):
    """Logits ``[len(where), vocab]`` at the ``(row, position)`` pairs of ``where`` for ``ids``
    (``[batch, width]``, right-padded), the LM head run on those hidden states only.

    The head's input is cut by a forward pre-hook, so whatever the model applies after its head
    (soft-capping, scaling) still applies; a model that does not call its head as a module gets
    the full logits, indexed afterwards.
    """
    import torch

    rows = torch.tensor([r for r, _ in where], device=ids.device)
    cols = torch.tensor([c for _, c in where], device=ids.device)
    cut = []

    def pick(module, args):
        cut.append(True)
        return (args[0][rows, cols].unsqueeze(0), *args[1:])

    head = model.get_output_embeddings()
    handle = head.register_forward_pre_hook(pick) if head is not None else None
    try:
        logits = model(input_ids=ids, use_cache=False).logits
    finally:
        if handle is not None:
            handle.remove()
    return logits[0] if cut else logits[rows, cols]


class HFEngine:
    """A ``transformers`` causal LM on CPU or one GPU.

    Args:
        model: a local path or a hub id (loading stays real; tests pass local paths).
        batch_size: distinct sequences per forward pass.
        dtype: ``"float32"`` (default; exact on CPU), ``"bfloat16"``, ``"float16"`` or ``"auto"``.
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available.
        revision: hub revision, recorded in outputs.
    """

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        dtype: str = "float32",
        device: str | None = None,
        revision: str | None = None,
        max_length: int | None = None,
        seed: int = 0,
    ):
        import torch
        from transformers import AutoModelForCausalLM

        self.model_name, self.revision, self.batch_size, self.seed = model, revision, batch_size, seed
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_tokenizer(model, revision)  # checked before the weights load
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model, revision=revision, dtype=torch_dtype)
        self.model.to(self.device).eval()
        window = getattr(self.model.config, "max_position_embeddings", 2048)
        # Scoring keeps window - 1 input tokens, as the vLLM engine must: the same scores on both.
        self.max_length = max_length or window - 1
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.context_window = window
        # Generation totals: batches, decode steps (forward passes after the prompt's), tokens
        # generated, and tokens kept (those of the returned texts).
        self.stats = {"batches": 0, "decode_steps": 0, "tokens_generated": 0, "tokens_kept": 0}

    def count_tokens(self, prompts: Sequence[str]) -> list[int]:
        """Tokens of each prompt as :meth:`generate` feeds it (no special tokens added)."""
        return [len(ids) for ids in self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]

    # -- scoring -----------------------------------------------------------------------------
    def encode(self, requests: Sequence[LoglikelihoodRequest]) -> list[EncodedRequest]:
        return encode_requests(self.tokenizer, requests, self.max_length, self.name)

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: Callable[[int], None] | None = None
    ) -> list[float]:
        """Summed log-probability of each continuation given its context.

        The model reads each distinct input once, batched longest first, right-padded and without an
        attention mask (the causal mask alone keeps padding out of every real position), as
        lm-evaluation-harness's HF backend feeds it; only the hidden states of the scored positions
        reach the LM head (:func:`_scored_logits`), so a question of 5 letters costs one forward
        pass and one LM-head row.
        """
        import torch

        encoded = self.encode(requests)
        cover = shared_prefix_plan([tuple(e.inputs) for e in encoded])
        users: dict[tuple[int, ...], list[int]] = {}
        for i, e in enumerate(encoded):
            if e.continuation:  # else merged into the context's last token: 0.0, as lm-eval scores it
                users.setdefault(cover[tuple(e.inputs)], []).append(i)
        # Longest first: the first batch fails fast if memory is short, and padding stays low.
        sequences = sorted(users, key=len, reverse=True)
        results = [0.0] * len(encoded)
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            for start in range(0, len(sequences), self.batch_size):
                batch = sequences[start : start + self.batch_size]
                ids = torch.full((len(batch), len(batch[0])), pad, dtype=torch.long)
                # (row, position) of every scored logit, once however many requests read it
                where: dict[tuple[int, int], int] = {}
                picks, owners = [], []  # (index into `where`, target token) and its request
                for row, seq in enumerate(batch):
                    ids[row, : len(seq)] = torch.tensor(seq)
                    for i in users[seq]:
                        e = encoded[i]
                        first = len(e.inputs) - len(e.continuation)  # the position predicting its 1st token
                        for k, target in enumerate(e.continuation):
                            picks.append((where.setdefault((row, first + k), len(where)), target))
                            owners.append(i)
                logits = _scored_logits(self.model, ids.to(self.device), list(where))
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                at, targets = (torch.tensor(x, device=logprobs.device) for x in zip(*picks, strict=True))
                scores = logprobs[at, targets].tolist()
                for i, score in zip(owners, scores, strict=True):
                    results[i] += score
                if progress:
                    progress(sum(len(users[seq]) for seq in batch))
        return results

    # -- generation --------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[str],
        params: GenerationParams | Sequence[GenerationParams],
        progress: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        """Greedy requests with equal settings go in batches through ``model.generate``; sampling
        requests go in batches of ``batch_size`` whatever their settings, each row drawing from
        its own ``torch.Generator`` seeded with its request's seed, so a result depends on its
        own seed and prompt only, never on what it was batched with (:meth:`_sample_batch`)."""
        return generate_through(self.open_stream(), prompts, params, progress)

    def open_stream(self) -> HFStream:
        """A :class:`~teacherlm_core.engines.GenerationStream`: each ``poll`` runs one batch of
        what is queued, so a batch fills up across the caller's parts and retries."""
        return HFStream(self)

    def _sample_batch(self, prompts: list[str], plist: list[GenerationParams]) -> list[Generation]:
        """Sampling with temperature and top-p (as vLLM: no top-k), one ``torch.Generator`` per row.

        A manual decoding loop over the KV cache: at each step every unfinished row draws its next
        token from its own generator, so the draw sequence of a request is the same at any batch
        size (the logits of a row differ between batch sizes only by float rounding).
        """
        import torch

        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.device
        )
        ids, mask = enc["input_ids"], enc["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [torch.Generator().manual_seed(self.seed if p.seed is None else p.seed) for p in plist]
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        rows: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)
        past = None
        steps = 0
        with torch.inference_mode():
            for _ in range(max(p.max_new_tokens for p in plist)):
                steps += 1
                out = self.model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=past,
                    use_cache=True,
                    logits_to_keep=1,
                )
                past = out.past_key_values
                logits = out.logits[:, -1, :].float().cpu()
                nxt = torch.full((len(prompts), 1), pad, dtype=torch.long)
                for r, p in enumerate(plist):
                    if done[r]:
                        continue
                    token = int(
                        torch.multinomial(
                            _top_p_probs(logits[r] / p.temperature, p.top_p), 1, generator=gens[r]
                        )
                    )
                    nxt[r, 0] = token
                    if token == eos:
                        done[r] = True
                        continue
                    rows[r].append(token)
                    done[r] = len(rows[r]) >= p.max_new_tokens
                    if not done[r] and p.stop:
                        done[r] = _holds_stop(
                            self.tokenizer.decode(rows[r], skip_special_tokens=True), p.stop
                        )
                if all(done):
                    break
                ids = nxt.to(self.device)
                mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
                positions = positions[:, -1:] + 1
        self.stats["batches"] += 1
        self.stats["decode_steps"] += steps
        return [self._finish(row, p) for row, p in zip(rows, plist, strict=True)]

    def _finish(self, row: list[int], p: GenerationParams, reason: str | None = None) -> Generation:
        reason = reason or ("length" if len(row) >= p.max_new_tokens else "stop")
        full = text = self.tokenizer.decode(row, skip_special_tokens=True)
        for s in p.stop:
            if s in text:
                text, reason = text[: text.index(s)], "stop"
        kept = len(row)
        if len(text) < len(full):  # the fewest leading tokens whose text covers what is returned
            while kept and len(self.tokenizer.decode(row[: kept - 1], skip_special_tokens=True)) >= len(text):
                kept -= 1
        self.stats["tokens_generated"] += len(row)
        self.stats["tokens_kept"] += kept
        return Generation(
            text=text, num_tokens=len(row), finish_reason=reason, token_ids=tuple(row), kept_tokens=kept
        )

    def _generate_batch(self, prompts: list[str], p: GenerationParams) -> list[Generation]:
        import torch
        from transformers import StoppingCriteriaList

        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.device
        )
        kwargs = {
            "do_sample": p.temperature > 0,
            "max_new_tokens": p.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if p.temperature > 0:
            kwargs |= {"temperature": p.temperature, "top_p": p.top_p}
        eos = self.tokenizer.eos_token_id
        width = enc["input_ids"].shape[1]
        stop = _text_stop(self.tokenizer, width, p.stop, eos) if p.stop else None
        if stop is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([stop])
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        self.stats["batches"] += 1
        self.stats["decode_steps"] += out.shape[1] - width
        results = []
        for r, row in enumerate(out[:, width:].tolist()):
            reason = None
            if stop is not None and r in stop.stopped_at:
                row, reason = row[: stop.stopped_at[r]], "stop"
            elif eos in row:
                row, reason = row[: row.index(eos)], "stop"
            results.append(self._finish(row, p, reason))
        return results


class HFStream:
    """Requests queued by priority, then arrival; each :meth:`poll` runs one batch of up to ``batch_size``.

    The batch is the queue's first request plus the next ones that batch with it. Sampling
    requests batch together whatever their settings and priorities: each row draws from its own
    generator, so its tokens depend on its prompt and seed only (:meth:`HFEngine._sample_batch`),
    and a caller's parts and retries fill one another's batches. Greedy requests batch only with
    greedy requests of the same settings (the seed aside) and the same priority: a greedy argmax
    can flip on float rounding, which depends on the batch's shapes, so a caller that gives each
    part its own priority gets exactly the greedy batches, and so the tokens, of one ``generate``
    call per part, resumed or not (greedy has no retries, so only a part's last batch can be
    short: at most 1 in 48 at the default 512-record parts and ``batch_size`` 32).
    """

    def __init__(self, engine: HFEngine):
        self.engine = engine
        self.queue: list[
            tuple[int, int, Hashable, str, GenerationParams]
        ] = []  # sorted: (priority, arrival, ...)
        self.arrivals = itertools.count()

    @property
    def in_flight(self) -> int:
        return len(self.queue)

    def submit(self, key: Hashable, prompt: str, params: GenerationParams, priority: int = 0) -> None:
        """Queue one request; lower ``priority`` runs first, ties in arrival order."""
        bisect.insort(self.queue, (priority, next(self.arrivals), key, prompt, params))

    def poll(self) -> list[tuple[Hashable, Generation]]:
        """One batch: ``[(key, Generation)]`` for up to ``batch_size`` requests (``[]`` when none is queued)."""
        if not self.queue:
            return []
        priority, first = self.queue[0][0], self.queue[0][-1]
        greedy = None if first.temperature > 0 else replace(first, seed=None)
        batch, rest = [], []
        for item in self.queue:
            p = item[-1]
            if greedy is None:
                fits = p.temperature > 0
            else:
                fits = item[0] == priority and p.temperature <= 0 and replace(p, seed=None) == greedy
            (batch if fits and len(batch) < self.engine.batch_size else rest).append(item)
        self.queue = rest
        prompts = [prompt for *_, prompt, _ in batch]
        if greedy is not None:
            gens = self.engine._generate_batch(prompts, greedy)
        else:
            gens = self.engine._sample_batch(prompts, [p for *_, p in batch])
        return [(item[2], g) for item, g in zip(batch, gens, strict=True)]
