"""Run under torchrun by test_sharding: each rank evaluates its share with the fake predictor
and writes what it encoded and what it gathered."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from accelerate import Accelerator

from segearth.evaluation import evaluate

from .fakes import FakePredictor, make_samples


def main(data: Path, out: Path) -> None:
    accelerator = Accelerator(cpu=True)
    samples = make_samples(data, write=False)  # the test wrote the images
    predictor = FakePredictor()
    result = evaluate(predictor, samples, progress=False, keep_masks=True, accelerator=accelerator)
    record = {"encoded": [Path(p).name for p in predictor.images], "ids": [i.id for i in result.items],
              "ious": [i.iou_canvas for i in result.items], "masks": sorted(result.masks),
              "processes": result.meta["processes"]}
    (out / f"rank{accelerator.process_index}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
