"""What streaming through the app costs on top of the library, at the released model size: the
app's whole answer (from the page's mask update to its last update, read by a `gradio_client`
visitor of the real app server) against the library's `answer_stream` (from the mask to the last
piece) for the same question about the same image.

The released architecture with random weights (nothing is downloaded) in fp32 on the CPU, one
1024x768 image, answers forced to exactly `--answer-tokens` tokens (`first_mask.timed_answers`:
random weights would stop or loop at random). One process holds the one model: the app is served
from it in-process (`app.ui.build_app` with the model already in its cache), and the library and
the app take turns, `--rounds` times, so both meet the same machine load.

    flock /tmp/segearth-big.lock python benchmarks/stream_overhead.py [--rounds 3] [--answer-tokens 32]

`--small` runs `SegEarthConfig.tiny()` instead (seconds, for trying the script out).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the app, beside the library
sys.path.insert(0, str(REPO / "benchmarks"))  # sibling benchmarks

from first_mask import timed_answers  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from predictor_cache import QUESTIONS, random_tokenizer  # noqa: E402

from app.config import DEMO_LABEL, AppConfig  # noqa: E402
from app.handlers import Handlers  # noqa: E402
from app.ui import build_app, launch_options  # noqa: E402
from segearth import Predictor  # noqa: E402
from segearth.config import SegEarthConfig  # noqa: E402
from segearth.geo import GeoImage  # noqa: E402
from segearth.model import SegEarthR1  # noqa: E402
from tests.app.process import free_port  # noqa: E402

#: A threshold under which the random model finds a target, so an answer is decoded.
THRESHOLD = 0.05
#: The checkpoint name the app is told (never loaded: the model is put in its cache).
CHECKPOINT = "random-released"


def library_answer(predictor: Predictor, image: GeoImage, question: str) -> float:
    """Seconds from the mask to the last piece of `answer_stream` (the image already encoded)."""
    result = predictor.predict(question, threshold=THRESHOLD, answer=False)
    start = time.perf_counter()
    for _ in predictor.answer_stream(result):
        pass
    return time.perf_counter() - start


def app_answer(client: Client, upload: Path, question: str) -> tuple[float, int]:
    """Seconds from the mask update's arrival to the last update's, and the updates sent."""
    job = client.submit("upload", "", handle_file(str(upload)), question, DEMO_LABEL, "fp32",
                        False, DEMO_LABEL, "fp32", THRESHOLD, 0.5, api_name="/run")
    mask_at = None
    while not job.done():
        if mask_at is None and job.outputs():
            mask_at = time.perf_counter()
        time.sleep(0.005)
    done_at = time.perf_counter()
    job.result()
    return done_at - (mask_at or done_at), len(job.outputs())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--answer-tokens", type=int, default=32)
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = SegEarthConfig.tiny() if args.small else SegEarthConfig.released()
    predictor = Predictor(SegEarthR1(config), random_tokenizer(), precision="fp32",
                          checkpoint="random")
    predictor.warm_up()
    # the app "loads" its checkpoint: this model
    mock.patch.object(Predictor, "from_pretrained", lambda *args, **kwargs: predictor).start()
    app_config = AppConfig.from_env({"SEGEARTH_DEMO_CHECKPOINT": CHECKPOINT,
                                     "SEGEARTH_CHECKPOINT": CHECKPOINT,
                                     "SEGEARTH_PRECISION": "fp32", "HF_HUB_OFFLINE": "1"})
    demo = build_app(app_config, Handlers(app_config))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(app_config))
    with tempfile.TemporaryDirectory(prefix="segearth-stream-") as tmp, \
            timed_answers(args.answer_tokens, []):
        upload = Path(tmp) / "scene.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (768, 1024, 3), np.uint8)).save(upload)
        image = GeoImage(np.asarray(Image.open(upload).convert("RGB")))
        # as a page: the updates, not the files behind them (a browser fetches a file on a click)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        app_answer(client, upload, QUESTIONS[0])  # the app encodes the image once (then cached)
        predictor.set_image(image)
        library, app, updates = [], [], []
        for i in range(args.rounds):
            question = QUESTIONS[1 + i % (len(QUESTIONS) - 1)]
            library.append(library_answer(predictor, image, question))
            seconds, sent = app_answer(client, upload, question)
            app.append(seconds)
            updates.append(sent)
            print(f"round {i + 1}: library {library[-1]:.2f} s, app {app[-1]:.2f} s "
                  f"({sent} updates)", flush=True)
    demo.close()
    lib, ours = statistics.median(library), statistics.median(app)
    print(f"whole answer ({args.answer_tokens} tokens, fp32, "
          f"{'tiny' if args.small else 'released size'}), median of {args.rounds}: library "
          f"answer_stream {lib:.2f} s, app {ours:.2f} s = {ours / lib:.2f}x; updates per run "
          f"{statistics.median(updates):g}", flush=True)


if __name__ == "__main__":
    main()
