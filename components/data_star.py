from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from ._image import VLLM_IMAGE


@dsl.component(base_image=VLLM_IMAGE, install_kfp_package=False)
def data_star(
    data: Input[Dataset],
    teacher_data: Output[Dataset],
    teacher_base_model: str,
    star_rounds: int,
    star_max_new_tokens: int,
    temperature: float,
    seed: int,
    engine: str,
):
    """STaR: keep the base teacher's rationales that reach the gold answer, rationalise the others.

    Args:
        data: Annotated seed data; its train split is expanded.
        teacher_data: train.jsonl (kept records, chain_of_thought = the kept rationale), quarantine/, manifest.json.
        teacher_base_model: The base teacher: local path, s3:// URI or hub id.
        star_rounds: Most STaR rounds.
        star_max_new_tokens: Token budget of each rationale.
        temperature: Sampling temperature (0: greedy).
        seed: Base seed of every request.
        engine: auto (vLLM where it can run the model, else HF, said once), vllm or hf.
    """
    from teacherlm_core.stages.data_star import data_star

    manifest = data_star(
        teacher_base_model, data.path, teacher_data.path, star_rounds=star_rounds,
        star_max_new_tokens=star_max_new_tokens, temperature=temperature, seed=seed, engine=engine,
    )  # fmt: skip
    teacher_data.metadata.update({k: v for k, v in manifest["counts"].items() if isinstance(v, int)})
