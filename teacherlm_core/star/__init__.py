"""STaR rounds (Zelikman et al., 2022): turn annotated questions into teacher-written rationales.

    teacherlm data star --model runs/r1/models/teacher --input runs/r1/data --output runs/r1/star --rounds 3

Each round, for every input sample that has no kept rationale yet:

1. **generate** -- the teacher continues ``Q: {question} (A) ... (B) ... A: Let's think step by step.``
   without seeing the answer. The rationale is kept (``star_source="generated"``) when its final
   answer ("... So the answer is (B)." / "... is false.") is the gold one.
2. **rationalise** -- for the others the teacher continues the answer-conditioned prompt
   ``Q: ... A: The answer is (B). Let's think step by step.`` (DESIGN's teacher format). The
   rationale is kept (``star_source="rationalized"``) when it is well-formed: not empty, not an echo
   of the prompt, not garbled (control characters, U+FFFD), with at least ``min_words`` words of
   reasoning before its conclusion (statements of an answer and copies of the question do not
   count: :func:`.judge.reasoning_words`), no repeated sentence (a generation loop), and
   concluding with the gold answer (the same checks apply to step 1's rationales).
   A rationalisation that stops without a conclusion gets ``So the answer is {gold}.`` appended
   (``star_conclusion_appended=True``): the hint fixed the answer, so the sentence adds no
   information, and it gives every kept rationale the same ending as the gold chains of thought.
   One cut by ``max_new_tokens`` first loses its unfinished last sentence; if nothing complete is
   left, it fails. One that concludes with a *wrong* answer always fails.
3. a sample failing both is retried in the next round (with new seeds, or a retrained teacher);
   after the last round it goes to ``quarantine/failed.jsonl`` with the reasons and every attempt.

Each phase of a round is ONE ``engine.generate`` call over all its prompts (vLLM batches them
continuously). Seeds are per request, derived from ``(seed, sample id, round, kind)``, so a rerun
with the same inputs reproduces every file byte for byte; with ``temperature=0`` decoding is greedy.

With a ``train_fn`` the teacher is retrained between rounds on everything kept so far
(``rounds/round-NN/train.jsonl``) and the next round loads the model path it returns.

Output directory::

    train.jsonl                 kept records in input order: every input field, chain_of_thought = the
                                kept rationale, star_round, star_source, star_teacher, star_conclusion_appended
    quarantine/failed.jsonl     samples without a kept rationale after the last round (reason + attempts)
    quarantine/rejected.jsonl   input rows that break the data contract (line + reason)
    rounds/round-NN/            with a train_fn only: the kept set it retrained on (train.jsonl), its config, model
    manifest.json               rounds, counts, sha256 of every file, schema version, provenance

``counts.in = kept + failed + invalid`` always holds.
"""

from __future__ import annotations

from ..answers import Conclusion, parse_answer
from .config import FAILED, KEPT, StarConfig, TrainFn
from .judge import Verdict, judge
from .prompts import generate_prompt, rationalize_prompt
from .retrain import subprocess_train_fn
from .rounds import run_star
from .teacher_data import teacher_data

__all__ = [
    "FAILED",
    "KEPT",
    "Conclusion",
    "StarConfig",
    "TrainFn",
    "Verdict",
    "generate_prompt",
    "judge",
    "parse_answer",
    "rationalize_prompt",
    "run_star",
    "subprocess_train_fn",
    "teacher_data",
]
