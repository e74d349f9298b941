"""A tiny training config and an in-process training run for the training tests."""
from __future__ import annotations

from pathlib import Path

from segearth.training.config import TrainConfig, load_config

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "train" / "configs" / "demo.json"
IMAGE_SIZE = 64


def tiny_config(data_root: Path, output_dir: Path, *overrides: str) -> TrainConfig:
    """The demo recipe shrunk to seconds per run: 64x64 canvas, batch 4, no validation until the
    end, no workers."""
    return load_config(DEMO_CONFIG, [
        f"data_root={data_root}", f"output_dir={output_dir}", "synthetic=null",
        f'model.overrides={{"image_size": {IMAGE_SIZE}}}', "val_split=heldout", "init.bpe_vocab_size=320",
        "loss.num_points=1024", "effective_batch_size=4", "per_device_batch_size=4", "num_workers=0",
        "eval_every=0", "save_every=0", "log_every=1", *overrides,
    ])


def run_training(config: TrainConfig, resume: str | None = None) -> Path:
    """`segearth.training.loop.train` in this process, with accelerate's singletons reset so that
    runs do not share state."""
    from accelerate.state import AcceleratorState, GradientState

    from segearth.training.loop import train

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return train(config, resume=resume)
