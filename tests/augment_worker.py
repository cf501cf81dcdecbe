"""Run an augmentation with the scripted engine in its own process (for kill -9 tests).

python tests/augment_worker.py INPUT OUTPUT NUM_SHARDS PART_SIZE DELAY [SHARD_INDEX]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fake_engines import ScriptedEngine

from teacherlm_core.augment import AugmentConfig, augment

if __name__ == "__main__":
    inp, out, shards, part_size, delay = sys.argv[1:6]
    shard = int(sys.argv[6]) if len(sys.argv) > 6 else None
    cfg = AugmentConfig(
        model="scripted-teacher",
        input=inp,
        output=out,
        num_shards=int(shards),
        part_size=int(part_size),
        engine="hf",
    )
    engine = ScriptedEngine(delay=float(delay), empty_rate=0.1)
    augment(cfg, shard, engine=lambda: engine)
