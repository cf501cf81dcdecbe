"""``student``: plain and augmented students (and per-field ablations) in parallel -> eval -> comparison report.

    teacherlm pipeline run student --local --param augmented_data=runs/augmented --param eval_data=runs/data

``graph`` takes the datasets as artifacts (``end_to_end`` nests it); the published pipeline takes
their URIs and imports them.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown

from components import compare, evaluate, student_variants, train_student

from .._settings import Settings, on_cpu, on_gpu

NAME = "teacherlm-student"


def graph(s: Settings = Settings()):
    @dsl.pipeline(
        name="compare-students", description="Train students on plain and augmented data, evaluate, compare."
    )
    def compare_students(
        augmented: Input[Dataset],
        eval_data: Input[Dataset],
        student_model: str = "Qwen/Qwen2.5-0.5B",
        ablation: bool = False,
        train_config: str = "student",
        max_steps: int = 0,
        nodes: int = 1,
        procs_per_node: int = 8,
        deepspeed: str = "",
        launcher: str = "auto",
        work_root: str = "",
        engine: str = "vllm",
        eval_batch_size: int = 32,
    ) -> Markdown:
        """Train students on plain and augmented data, evaluate, compare.

        Args:
            augmented: The augmented dataset (train.jsonl); "plain" students see only its questions and answers.
            eval_data: Held-out multiple-choice data (its test split).
            student_model: Base student: hub id, s3:// URI or local path.
            ablation: Also train one student per explanation field.
            train_config: Training config: a shipped name (student, student_tiny) or a YAML URI.
            max_steps: Optimizer steps; 0 keeps the config's.
            nodes: Nodes of each training TrainJob.
            procs_per_node: Ranks per node (GPUs per node on the cluster).
            deepspeed: zero2, zero3 or none; empty keeps the config's.
            launcher: trainjob, torchrun, or auto (TrainJob inside Kubernetes).
            work_root: Shared storage (s3:// prefix) for training data/models and resuming; empty: none.
            engine: Inference engine for evaluation: vllm or hf.
            eval_batch_size: Evaluation batch size.
        """
        variants = on_cpu(student_variants(ablation=ablation), s, "student variants")
        with dsl.ParallelFor(variants.output, parallelism=s.parallelism) as variant:
            student = on_cpu(
                train_student(
                    data=augmented, variant=variant, base_model=student_model, config=train_config,
                    max_steps=max_steps, nodes=nodes, procs_per_node=procs_per_node, deepspeed=deepspeed,
                    launcher=launcher, work_root=work_root,
                ),
                s, "train student (TrainJob)", retry=True,
            )  # fmt: skip
            scored = on_gpu(
                evaluate(model=student.outputs["student"], data=eval_data, name=variant, split="test",
                         engine=engine, batch_size=eval_batch_size),
                s, "evaluate student",
            )  # fmt: skip
        report = on_cpu(
            compare(reports=dsl.Collected(scored.outputs["report"]), title="teacherlm: plain vs augmented students"),
            s, "comparison report", cache=False,
        )  # fmt: skip
        return report.outputs["report"]

    return compare_students


def build(s: Settings = Settings()):
    compare_students = graph(s)

    @dsl.pipeline(name=NAME, description="Train plain and augmented students, evaluate them and compare.")
    def student(
        augmented_data: str = "s3://teacherlm/datasets/augmented",
        eval_data: str = "s3://teacherlm/datasets/eval",
        student_model: str = "Qwen/Qwen2.5-0.5B",
        ablation: bool = False,
        train_config: str = "student",
        max_steps: int = 0,
        nodes: int = 1,
        procs_per_node: int = 8,
        deepspeed: str = "",
        launcher: str = "auto",
        work_root: str = "",
        engine: str = "vllm",
        eval_batch_size: int = 32,
    ) -> Markdown:
        """Train plain and augmented students, evaluate them and compare.

        Args:
            augmented_data: The augmented dataset (a directory with train.jsonl, or the file), as a URI.
            eval_data: Held-out multiple-choice data: a directory with test.jsonl, or the file, as a URI.
            student_model: Base student: hub id, s3:// URI or local path.
            ablation: Also train one student per explanation field.
            train_config: Training config: a shipped name (student, student_tiny) or a YAML URI.
            max_steps: Optimizer steps; 0 keeps the config's.
            nodes: Nodes of each training TrainJob.
            procs_per_node: Ranks per node (GPUs per node on the cluster).
            deepspeed: zero2, zero3 or none; empty keeps the config's.
            launcher: trainjob, torchrun, or auto (TrainJob inside Kubernetes).
            work_root: Shared storage (s3:// prefix) for training data/models and resuming; empty: none.
            engine: Inference engine for evaluation: vllm or hf.
            eval_batch_size: Evaluation batch size.
        """
        augmented = dsl.importer(artifact_uri=augmented_data, artifact_class=Dataset, reimport=False)
        augmented.set_display_name("import augmented data")
        held_out = dsl.importer(artifact_uri=eval_data, artifact_class=Dataset, reimport=False)
        held_out.set_display_name("import eval data")
        return compare_students(
            augmented=augmented.output, eval_data=held_out.output, student_model=student_model, ablation=ablation,
            train_config=train_config, max_steps=max_steps, nodes=nodes, procs_per_node=procs_per_node,
            deepspeed=deepspeed, launcher=launcher, work_root=work_root, engine=engine,
            eval_batch_size=eval_batch_size,
        ).set_display_name("students").output  # fmt: skip

    return student
