"""Run an augmentation in its own process (for kill -9 tests): the scripted engine, or a real one.

The scripted engine streams (four requests a poll, the next part fed before the current one
drains), so a kill lands with two parts in flight.

python tests/augment_worker.py INPUT OUTPUT NUM_SHARDS PART_SIZE DELAY [SHARD_INDEX]

With ``TEACHERLM_WORKER_MODEL`` set, the real HF engine runs that model (greedy, so a resumed
run must reproduce the uninterrupted one token for token); DELAY is then ignored. With
``TEACHERLM_WORKER_HANG_AFTER=N`` the scripted engine hangs (no error, no result) after N polls,
and ``TEACHERLM_WORKER_STALL_S`` is the run's stall limit.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fake_engines import StreamingScriptedEngine

from teacherlm_core.augment import AugmentConfig, augment

if __name__ == "__main__":
    inp, out, shards, part_size, delay = sys.argv[1:6]
    shard = int(sys.argv[6]) if len(sys.argv) > 6 else None
    real = os.environ.get("TEACHERLM_WORKER_MODEL")
    cfg = AugmentConfig(
        model=real or "scripted-teacher",
        input=inp,
        output=out,
        num_shards=int(shards),
        part_size=int(part_size),
        engine="hf",
        stall_timeout_s=float(os.environ.get("TEACHERLM_WORKER_STALL_S", 1800)),
        **({"temperature": 0.0, "max_new_tokens": 40} if real else {}),
    )
    hang_after = int(os.environ.get("TEACHERLM_WORKER_HANG_AFTER", "-1"))
    engine = None if real else StreamingScriptedEngine(batch=4, delay=float(delay), empty_rate=0.1,
                                                       hang_after=hang_after)  # fmt: skip
    augment(cfg, shard, engine=None if real else (lambda: engine))
