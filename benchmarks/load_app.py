"""Many visitors at once: does every one get the answer they would get alone, and how long do
they wait?

Starts `python app.py` with the bundled demo model and a loopback tile server (nothing leaves
127.0.0.1), then:
  1. runs every visitor's requests one after another from a single client (the reference);
  2. starts one `gradio_client` client per visitor, all at once: a third upload their own
     synthetic scene, a third draw their own area on the map, a third ask a follow-up question
     about their own area or scene (two requests);
  3. compares every concurrent answer with its reference pixel for pixel (mask PNG) and word for
     word (answer), and prints latency percentiles (queue wait included: what a visitor waits),
     requests per minute, the deepest queue position and estimate a visitor was shown, the
     updates a run sent, and the CPU seconds per answered request of the app server (read from
     its process) and of the clients (this process: the clients' threads and the tile server).

    python benchmarks/load_app.py [--clients 50] [--checkpoint assets/demo-checkpoint]
        [--baseline DIR [--rounds 2]] [--fetch page|every-update]

What a visitor fetches (`--fetch`): `page` (the default), what a browser fetches, the image
the page shows (once per address) and, to compare it, the mask PNG; `every-update`, what
`gradio_client` does by itself: every file of every update, and of the result once more (a
generator's last update comes twice), each through a fresh HTTP transport (a new TLS context
each, tens of CPU ms on the clients' cores, which the server shares).

`--baseline DIR` runs another checkout's app.py (e.g. `git archive COMMIT | tar -x -C DIR`) in
the same run, alternating with this one for `--rounds` rounds, and prints this one's figures as
ratios of the baseline's: on a shared machine, only figures measured side by side compare.

Exit status 1 when any request failed or differed from its reference. Bounded: one request gets
at most --request-timeout seconds, the whole run --timeout seconds.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the loopback tile server lives with the tests

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.utils import Status  # noqa: E402

from app.config import DEMO_LABEL  # noqa: E402
from segearth.data.synthetic import QUESTIONS, SEEN_CATEGORIES, make_item  # noqa: E402
from tests.app.process import python_app  # noqa: E402
from tests.geo.synthetic import RED_BOX, TileServer  # noqa: E402

KINDS = ("upload", "area", "follow-up")
#: Each visitor's own area: a box around the tile server's red square, shifted per visitor.
AREA_SIZE = (0.0030, 0.0023)  # degrees (west-east, south-north)


@dataclass
class Request:
    """One question about one visitor's image."""

    source: str  # "upload" or "map"
    image: str | None  # the uploaded file
    area: str  # GeoJSON of the drawn area
    question: str


@dataclass
class Outcome:
    mask: np.ndarray | None = None
    answer: str | None = None
    error: str | None = None
    seconds: float = 0.0
    ranks: list[int] = field(default_factory=list)  # queue positions the visitor was shown
    etas: list[float] = field(default_factory=list)  # and the estimates
    updates: int = 0  # the updates the run sent (a streamed answer sends several)


def visitors(count: int, folder: Path) -> list[list[Request]]:
    """Each visitor's requests (one, or two for a follow-up), all with their own image."""
    plans = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        category = SEEN_CATEGORIES[i % len(SEEN_CATEGORIES)]
        on_map = kind == "area" or (kind == "follow-up" and i % 2 == 0)
        if on_map:
            west = RED_BOX[0] - 0.0005 + 0.00004 * i
            south = RED_BOX[1] - 0.0005 + 0.00003 * i
            ring = [[west, south], [west + AREA_SIZE[0], south],
                    [west + AREA_SIZE[0], south + AREA_SIZE[1]], [west, south + AREA_SIZE[1]],
                    [west, south]]
            area, image = json.dumps({"type": "Polygon", "coordinates": [ring]}), None
            questions = list(QUESTIONS[category][:2])
        else:
            item = make_item(category, empty=False, split="train", size=(256, 256),
                             rng=np.random.default_rng(i))
            image = str(folder / f"visitor{i:02d}.png")
            Image.fromarray(item.image).save(image)
            area, questions = "", item.questions[:2]
        asked = questions[:2] if kind == "follow-up" else questions[:1]
        plans.append([Request("map" if on_map else "upload", image, area, q) for q in asked])
    return plans


def ask(client: Client, request: Request, timeout: float, poll: float = 0.1) -> Outcome:
    """One run through the API, as the page sends it; the mask comes from its download. A
    client made with `download_files=False` fetches what a page would (`fetch_as_page`). The
    job's state is read every `poll` seconds (its queue position meanwhile), so its time is
    known to that much."""
    start = time.perf_counter()
    outcome = Outcome()
    job = client.submit(request.source, request.area,
                        handle_file(request.image) if request.image else None, request.question,
                        DEMO_LABEL, "fp32", False, DEMO_LABEL, "fp32", 0.5, 0.5, api_name="/run")
    try:
        while not job.done():
            status = job.status()
            if status.code == Status.IN_QUEUE and status.rank is not None:
                outcome.ranks.append(status.rank)
                if status.eta is not None:
                    outcome.etas.append(status.eta)
            if time.perf_counter() - start > timeout:
                job.cancel()
                raise TimeoutError(f"no answer within {timeout:g} s")
            time.sleep(poll)
        result = job.result()
        outcome.updates = len(job.outputs())
        if client.download_files:
            (mask_png,) = [p for p in result[4] if p.endswith("_mask.png")]
        else:
            mask_png = fetch_as_page(client, job.outputs())
        outcome.mask = np.asarray(Image.open(mask_png))
        outcome.answer = result[2]
    except Exception as err:  # noqa: BLE001 - every failure is counted and reported
        outcome.error = f"{type(err).__name__}: {err}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def fetch_as_page(client: Client, updates: list) -> io.BytesIO:
    """Fetch what a browser fetches of a run's updates: the image it shows, once per address
    (an update that shows it again names the same file), and the mask PNG of the last update's
    downloads (a browser fetches a download when it is clicked; here, to compare it)."""
    shown = {update[1]["url"] for update in updates if isinstance(update[1], dict)
             and update[1].get("url")}
    (mask,) = [f["url"] for f in updates[-1][4] if f["path"].endswith("_mask.png")]
    with httpx.Client() as http:
        for url in shown:
            http.get(url).raise_for_status()
        return io.BytesIO(http.get(mask).raise_for_status().content)


@contextmanager
def loopback_app(checkpoint: str, queue_size: int, log: Path, root: Path = REPO) -> Iterator[str]:
    """A tile server and `python app.py` (of the checkout `root`) on 127.0.0.1; the app's URL."""
    tiles = TileServer()
    threading.Thread(target=tiles.serve_forever, daemon=True).start()
    env = {"SEGEARTH_DEMO_CHECKPOINT": checkpoint,
           "SEGEARTH_CHECKPOINT": checkpoint, "SEGEARTH_PRECISION": "fp32",
           "SEGEARTH_TILE_URL": tiles.url("ok"), "SEGEARTH_STREET_TILE_URL": tiles.url("ok"),
           "SEGEARTH_TILE_ATTRIBUTION": "loopback", "SEGEARTH_MAX_TILES": "4",
           "SEGEARTH_QUEUE_SIZE": str(queue_size), "HF_HUB_OFFLINE": "1"}
    try:
        with python_app(env, log, root) as url:
            yield url
    finally:
        tiles.shutdown()
        tiles.server_close()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU seconds `process` has used so far, all its threads."""
    times = process.cpu_times()
    return times.user + times.system


def app_process() -> psutil.Process:
    """The `python app.py` this process started (the one app it runs at a time)."""
    (app,) = [p for p in psutil.Process().children() if p.cmdline()[-1:] == ["app.py"]]
    return app


def measure(clients: int, checkpoint: str, request_timeout: float,
            timeout: float, root: Path = REPO, fetch: str = "page") -> dict:
    """Run the reference and the concurrent phase against the app of checkout `root`; the
    figures, and every failure."""
    with tempfile.TemporaryDirectory(prefix="segearth-load-") as tmp:
        plans = visitors(clients, Path(tmp))
        log = Path(tmp) / "app.log"
        with loopback_app(checkpoint, queue_size=2 * clients + 10, log=log, root=root) as url:
            server, client = app_process(), psutil.Process()
            downloads = fetch == "every-update"  # else the page's files, by fetch_as_page
            reference_client = Client(url, verbose=False, download_files=downloads)
            cpu = cpu_seconds(server), cpu_seconds(client)
            # a visitor alone is timed to 5 ms (a run takes a few tenths of a second); the
            # concurrent ones, which wait seconds, poll every 0.1 s, as 50 pages' worth of CPU
            reference = [[ask(reference_client, r, request_timeout, poll=0.005) for r in plan]
                         for plan in plans]
            single_cpu = cpu_seconds(server) - cpu[0], cpu_seconds(client) - cpu[1]
            sessions = [Client(url, verbose=False, download_files=downloads) for _ in plans]
            results: list[list[Outcome]] = [[] for _ in plans]
            barrier = threading.Barrier(len(plans))

            def visitor(i: int) -> None:
                barrier.wait()
                for request in plans[i]:
                    results[i].append(ask(sessions[i], request, request_timeout))

            threads = [threading.Thread(target=visitor, args=(i,), daemon=True)
                       for i in range(len(plans))]
            start = time.perf_counter()
            cpu = cpu_seconds(server), cpu_seconds(client)
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(max(1.0, timeout - (time.perf_counter() - start)))
            wall = time.perf_counter() - start
            together_cpu = cpu_seconds(server) - cpu[0], cpu_seconds(client) - cpu[1]

    problems = []
    for i, (plan, alone, together) in enumerate(zip(plans, reference, results)):
        if len(together) < len(plan):
            problems.append(f"visitor {i}: {len(plan) - len(together)} request(s) unanswered")
        for j, (ref, got) in enumerate(zip(alone, together)):
            where = f"visitor {i} ({KINDS[i % len(KINDS)]}) request {j + 1}"
            if ref.error or got.error:
                problems.append(f"{where}: {got.error or 'reference: ' + ref.error}")
            elif not np.array_equal(ref.mask, got.mask) or ref.answer != got.answer:
                differing = int((ref.mask != got.mask).sum()) if ref.mask.shape == got.mask.shape \
                    else "shape"
                problems.append(f"{where}: differs from the single-client run "
                                f"({differing} pixels, answers equal: {ref.answer == got.answer})")
    done = [o for outcomes in results for o in outcomes]
    latencies = [o.seconds for o in done if o.error is None]
    single = [o.seconds for outcomes in reference for o in outcomes if o.error is None]
    return {
        "app": str(root),
        "fetch": fetch,
        "clients": clients,
        "requests": sum(len(p) for p in plans),
        "answered": len(latencies),
        "identical": sum(len(p) for p in plans) - len(problems),
        "problems": problems,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "max_s": max(latencies, default=float("nan")),
        "requests_per_min": len(latencies) / wall * 60,
        "wall_s": wall,
        "single_client_median_s": statistics.median(single) if single else float("nan"),
        # CPU seconds per answered request: the server's own, and the clients' (this process)
        "server_cpu_per_request_s": together_cpu[0] / max(1, len(latencies)),
        "client_cpu_per_request_s": together_cpu[1] / max(1, len(latencies)),
        "single_server_cpu_per_request_s": single_cpu[0] / max(1, len(single)),
        "single_client_cpu_per_request_s": single_cpu[1] / max(1, len(single)),
        "updates_per_request": statistics.median(o.updates for o in done) if done else 0,
        # The masks really differ between visitors (identical empty masks would prove nothing).
        "distinct_masks": len({o.mask.tobytes() for o in done if o.mask is not None}),
        "non_empty_masks": sum(1 for o in done if o.mask is not None and o.mask.any()),
        "max_queue_position": max((r for o in done for r in o.ranks), default=None),
        "visitors_shown_an_estimate": sum(1 for o in done if o.etas),
        "visitors_who_waited": sum(1 for o in done if o.ranks),
    }


def report(figures: dict) -> str:
    lines = [
        f"app: {figures['app']} (visitors fetch: {figures['fetch']})",
        f"{figures['clients']} concurrent clients, {figures['requests']} requests "
        f"(uploads, drawn areas, follow-ups) in {figures['wall_s']:.1f} s",
        f"answered {figures['answered']}/{figures['requests']}, identical to the single-client "
        f"run (mask pixel for pixel and answer): {figures['identical']}/{figures['requests']} "
        f"({figures['distinct_masks']} different masks, {figures['non_empty_masks']} not empty)",
        f"latency (queue wait included): p50 {figures['p50_s']:.2f} s, p95 "
        f"{figures['p95_s']:.2f} s, max {figures['max_s']:.2f} s "
        f"(one request alone: {figures['single_client_median_s']:.2f} s)",
        f"throughput: {figures['requests_per_min']:.1f} requests/min",
        f"CPU per answered request: server {figures['server_cpu_per_request_s']:.3f} s, clients "
        f"{figures['client_cpu_per_request_s']:.3f} s (one request alone: server "
        f"{figures['single_server_cpu_per_request_s']:.3f} s, client "
        f"{figures['single_client_cpu_per_request_s']:.3f} s); "
        f"{figures['updates_per_request']:g} updates per run (median)",
        f"queue: deepest position shown {figures['max_queue_position']}, "
        f"{figures['visitors_who_waited']} requests waited, "
        f"{figures['visitors_shown_an_estimate']} were shown an estimate",
    ]
    lines += [f"PROBLEM {p}" for p in figures["problems"]]
    return "\n".join(lines)


#: The figures compared with the baseline's (`--baseline`), and which way is better.
COMPARED = {"server_cpu_per_request_s": "lower", "single_client_median_s": "lower",
            "requests_per_min": "higher", "p95_s": "lower", "p50_s": "lower",
            "client_cpu_per_request_s": "lower", "updates_per_request": "lower"}


def comparison(ours: list[dict], baseline: list[dict]) -> str:
    """This checkout's figures as ratios of the baseline's, each the median over the rounds."""
    lines = [f"this checkout / baseline, median of {len(ours)} interleaved round(s):"]
    for key, better in COMPARED.items():
        a = statistics.median(f[key] for f in ours)
        b = statistics.median(f[key] for f in baseline)
        lines.append(f"  {key}: {a:.3f} / {b:.3f} = {a / b:.2f}x ({better} is better)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--checkpoint", default=str(REPO / "assets" / "demo-checkpoint"))
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--baseline", type=Path, help="another checkout whose app.py to compare")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds, each running the baseline (if any) and then this checkout")
    parser.add_argument("--fetch", choices=["page", "every-update"], default="page",
                        help="the files a visitor fetches: a browser's, or gradio_client's own")
    args = parser.parse_args(argv)
    ours: list[dict] = []
    baseline: list[dict] = []
    for _ in range(args.rounds):
        for root, runs in ([(args.baseline, baseline)] if args.baseline else []) + [(REPO, ours)]:
            runs.append(measure(args.clients, args.checkpoint, args.request_timeout,
                                args.timeout, root, args.fetch))
            print(report(runs[-1]), flush=True)
    if baseline:
        print(comparison(ours, baseline), flush=True)
    return {**ours[-1], "problems": [p for f in ours + baseline for p in f["problems"]]}


if __name__ == "__main__":
    sys.exit(1 if main()["problems"] else 0)
