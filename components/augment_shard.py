from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from ._image import VLLM_IMAGE


@dsl.component(base_image=VLLM_IMAGE, install_kfp_package=False)
def augment_shard(
    teacher: Input[Model],
    split: Input[Dataset],
    shard: Output[Dataset],
    shard_index: int,
    num_shards: int,
    fields: str,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    engine: str,
    tensor_parallel_size: int,
    work_root: str,
    dry_run: bool,
):
    """The teacher writes fundamentals / chain of thought / common mistakes for one shard.

    Args:
        teacher: The trained teacher.
        split: The plan's split of the dataset to augment; the shard reads only its own file of it.
        shard: plan.json + shards/<shard>/ (parts, markers, _SUCCESS), for the merge.
        shard_index: Which shard, 0 <= shard_index < num_shards.
        num_shards: Shards in the plan.
        fields: Comma-separated explanation fields to write.
        max_new_tokens: Token limit per explanation.
        temperature: Sampling temperature (0: greedy, no retries).
        seed: Base seed; each request's seed derives from it.
        engine: vllm (tensor parallel over the task's GPUs), hf, or auto (vLLM where it can run the teacher, else HF; recorded in the plan, kept on resume).
        tensor_parallel_size: GPUs of the task (vLLM tensor parallel size).
        work_root: Shared storage (s3:// prefix) the shard writes to as it goes, so a retry resumes; empty: none.
        dry_run: Placeholder explanations, no model loaded (checks storage, fan-out and merge at full scale).
    """
    from teacherlm_core.stages.augment_shard import augment_shard

    counts = augment_shard(
        teacher.path, split.path, shard.path, shard_index=shard_index, num_shards=num_shards, fields=fields,
        max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, engine=engine,
        tensor_parallel_size=tensor_parallel_size, work_root=work_root, dry_run=dry_run,
    )  # fmt: skip
    shard.metadata.update(counts)
