"""Where a run's updates cost the server: Gradio's processing of each update (`postprocess_data`:
every output's postprocess, files moved to its cache, the page's config updated), per update and
per output, in CPU milliseconds of this process (the median of `--repeats`).

Builds the app in-process with the bundled demo model, asks one question about a synthetic scene
through the run handler (its updates: the mask's, the text's, the answer's), then processes each
update `--repeats` times, and each output alone (the others skipped) to price it over a skipped
output. A skipped output is not free: Gradio builds the component anew for it.

    python benchmarks/update_cost.py [--repeats 20]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
from gradio.state_holder import SessionState
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.config import DEMO_LABEL, AppConfig  # noqa: E402
from app.handlers import Handlers, Shown  # noqa: E402
from app.runs import RunRequest  # noqa: E402
from app.ui import build_app  # noqa: E402
from segearth.data.synthetic import SEEN_CATEGORIES, make_item  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    checkpoint = str(REPO / "assets" / "demo-checkpoint")
    config = AppConfig.from_env({"SEGEARTH_DEMO_CHECKPOINT": checkpoint,
                                 "SEGEARTH_CHECKPOINT": checkpoint, "SEGEARTH_PRECISION": "fp32",
                                 "HF_HUB_OFFLINE": "1"})
    handlers = Handlers(config)
    demo = build_app(config, handlers)
    (run_fn,) = [fn for fn in demo.fns.values() if fn.api_name == "run"]
    loop = asyncio.new_event_loop()

    def cpu_ms(update: Shown) -> float:
        state = SessionState(demo)
        loop.run_until_complete(demo.postprocess_data(run_fn, list(update), state))  # warm
        samples = []
        for _ in range(args.repeats):  # the median: other processes' bursts do not count
            start = time.process_time()
            loop.run_until_complete(demo.postprocess_data(run_fn, list(update), state))
            samples.append(time.process_time() - start)
        return statistics.median(samples) * 1000

    with tempfile.TemporaryDirectory(prefix="segearth-updates-") as tmp:
        scene = make_item(SEEN_CATEGORIES[0], empty=False, split="train", size=(256, 256),
                          rng=np.random.default_rng(0))
        upload = Path(tmp) / "scene.png"
        Image.fromarray(scene.image).save(upload)
        request = RunRequest("upload", "", str(upload), scene.questions[0], DEMO_LABEL, "fp32",
                             False, DEMO_LABEL, "fp32", 0.05, 0.5)
        updates = list(handlers.run(request, SimpleNamespace(session_hash="bench"),
                                    progress=lambda *a, **k: None))
        skipped = Shown(*(gr.skip() for _ in Shown._fields))
        base = cpu_ms(skipped)
        print(f"{len(updates)} updates; every output skipped: {base:.1f} ms")
        names = ["mask update"] + ["text update"] * (len(updates) - 2) + ["answer's update"]
        for name, update in zip(names, updates):
            costs = {field: cpu_ms(skipped._replace(**{field: getattr(update, field)})) - base
                     for field in Shown._fields
                     if not _skipped(getattr(update, field))}
            dearest = ", ".join(f"{k} {v:+.1f}" for k, v in
                                sorted(costs.items(), key=lambda kv: -kv[1])[:5])
            print(f"{name}: {cpu_ms(update):.1f} ms (over a skip, the dearest: {dearest})")
    loop.close()


def _skipped(value: object) -> bool:
    return isinstance(value, dict) and value == gr.skip()


if __name__ == "__main__":
    main()
