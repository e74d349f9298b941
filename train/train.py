"""Train SegEarth-R1: `accelerate launch train/train.py --config train/configs/<dataset>.json ...`
(or plain `python train/train.py ...` on one device). Flags: `--help`."""
import sys

from segearth.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
