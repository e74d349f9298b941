"""The one training entry point: ``python -m train`` or ``accelerate launch train/train.py``.

Everything a run needs is in its config file (``train/configs/``); the flags below are
shortcuts for the overrides people change most, and ``--set key.sub=value`` reaches the rest.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import SegEarthError
from .config import load_config

#: Shortcut flag -> config key.
SHORTCUTS = {
    "data_root": "data_root",
    "output_dir": "output_dir",
    "max_steps": "max_steps",
    "init_checkpoint": "init.checkpoint",
    "mask2former": "init.mask2former",
    "llm_source": "init.llm_source",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train", description="Train SegEarth-R1 (run under `accelerate launch` to use several GPUs or nodes).")
    p.add_argument("--config", required=True, help="a JSON file in train/configs/")
    p.add_argument("--data-root", help="the dataset's folder")
    p.add_argument("--output-dir", help="where states, checkpoints, metrics.csv and metrics.png go")
    p.add_argument("--max-steps", type=int, help="optimiser steps (the paper's iterations)")
    p.add_argument("--init-checkpoint", help="fine-tune this SegEarth-R1 checkpoint (folder or hub id)")
    p.add_argument("--mask2former", help="Mask2Former model_final_54b88a.pkl (path or URL)")
    p.add_argument("--llm-source", help="folder or hub id of the pretrained LLM and its tokenizer")
    p.add_argument("--resume", help="'latest' (this run's newest state, if any) or a state folder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set learning_rate=5e-5 --set loss.mask_kind=focal")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides = [f"{key}={json.dumps(getattr(args, flag))}"
                 for flag, key in SHORTCUTS.items() if getattr(args, flag) is not None]
    try:
        config = load_config(args.config, overrides + args.overrides)
        if args.print_config:
            print(json.dumps(config.to_dict(), indent=2))
            return 0
        from .loop import train

        train(config, resume=args.resume)
    except SegEarthError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
