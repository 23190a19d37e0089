"""``python -m engine.training ARGS``: ``frcnn train ARGS``, made for torchrun.

    torchrun --nproc_per_node=N -m engine.training --project DIR --out RUN ...
"""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
