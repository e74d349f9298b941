"""A public server that many visitors share: only the offered checkpoints, bounded requests, a
queue that tells each waiting visitor where they stand, and no leaks between sessions. All
against the real app on loopback (gradio_client)."""
from __future__ import annotations

import functools
import json
import threading
import time
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import Status
from PIL import Image

from app.config import DEMO_LABEL, AppConfig, Limits
from app.models import LoadedModel, ModelCache
from app.ui import launch_options
from segearth.errors import SegEarthError
from segearth.predictor import Predictor

from .conftest import AREA, REPO
from .servers import serve
from .test_api import files, record, render, run

DEMO = str(REPO / "assets" / "demo-checkpoint")
EXAMPLES = REPO / "assets" / "examples"
GB = 1024 ** 3
#: Gradio's own check of a dropdown value comes first; the handler's is the one behind it.
REFUSED = "not in the list of choices|not offered on this server"


def component_props(url: str, elem_id: str) -> dict:
    """The page's configuration of one component (what the browser is told)."""
    config = httpx.get(f"{url}config", timeout=30).json()
    (props,) = [c["props"] for c in config["components"] if c["props"].get("elem_id") == elem_id]
    return props


# --- 1. checkpoints a visitor may pick -----------------------------------------------------------
def test_only_the_configured_checkpoints_are_offered_and_accepted(app_url, app_environ,
                                                                  checkpoint, tmp_path):
    props = component_props(app_url, "checkpoint")
    assert props["allow_custom_value"] is False
    assert [value for _, value in props["choices"]] == [
        "EarthReason (released)", "RRSIS-D (released)", "Bundled demo model"]
    assert app_environ["SEGEARTH_DEMO_CHECKPOINT"] not in json.dumps(props)  # no server path

    client = Client(app_url, verbose=False)
    for value in ("someone/a-huge-model", str(tmp_path), "/etc", "../../etc/passwd",
                  app_environ["SEGEARTH_DEMO_CHECKPOINT"]):
        with pytest.raises(AppError, match=REFUSED) as refused:
            run(client, value)
        assert "Bundled demo model" in str(refused.value)  # says what may be picked
        assert app_environ["SEGEARTH_DEMO_CHECKPOINT"] not in str(refused.value).replace(
            value, "")  # names no server path besides what the visitor sent
    with pytest.raises(AppError, match=REFUSED):
        run(client, checkpoint, compare=True, checkpoint_b="someone/a-huge-model")
    assert run(client, checkpoint).answer.strip()  # and the offered one still runs


def test_extra_checkpoints_are_offered_by_label_without_their_path(app_environ, tmp_path):
    folder = tmp_path / "team-checkpoint"
    config = AppConfig.from_env({**app_environ, "SEGEARTH_CHECKPOINTS":
                                 f" {folder} , org/extra-model ,"})
    assert config.checkpoints["Configured: team-checkpoint"] == str(folder)
    assert config.checkpoints["Configured: org/extra-model"] == "org/extra-model"
    assert not config.allow_custom_checkpoints
    assert all(str(tmp_path) not in label for label in config.checkpoints)


def test_limits_come_from_the_environment(app_environ):
    assert AppConfig.from_env(app_environ).limits == Limits()  # the documented defaults
    assert Limits() == Limits(max_upload_mb=200, max_image_megapixels=50,
                              max_geotiff_side=20_000, max_question_chars=500,
                              max_checkpoint_gb=8, queue_size=100, question_layers=5)
    config = AppConfig.from_env({**app_environ, "SEGEARTH_MAX_UPLOAD_MB": "20",
                                 "SEGEARTH_QUEUE_SIZE": "7", "SEGEARTH_QUESTION_LAYERS": "2",
                                 "SEGEARTH_ALLOW_CUSTOM_CHECKPOINTS": "1"})
    assert (config.limits.max_upload_mb, config.limits.queue_size) == (20, 7)
    assert config.limits.question_layers == 2
    assert config.allow_custom_checkpoints and launch_options(config)["max_file_size"] == "20mb"


@pytest.mark.parametrize("name, value", [
    ("SEGEARTH_MAX_UPLOAD_MB", "lots"), ("SEGEARTH_MAX_QUESTION_CHARS", "0"),
    ("SEGEARTH_ALLOW_CUSTOM_CHECKPOINTS", "maybe"),
])
def test_bad_limit_settings_say_what_to_fix(app_environ, name, value):
    with pytest.raises(SegEarthError, match=f"{name}='{value}': give"):
        AppConfig.from_env({**app_environ, name: value})


@pytest.fixture(scope="module")
def custom_url(app_environ: dict[str, str]):
    """A trusted (local) server: custom checkpoints allowed, at most 1 GB."""
    with serve({**app_environ, "SEGEARTH_ALLOW_CUSTOM_CHECKPOINTS": "1",
                "SEGEARTH_MAX_CHECKPOINT_GB": "1"}) as url:
        yield url


@pytest.fixture
def hub_listing(monkeypatch):
    """The hub's file listing (HfApi.model_info with files_metadata), answered locally: repo id
    -> file sizes. Records which repositories were listed."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError

    repos: dict[str, list[int]] = {}
    listed: list[str] = []

    def model_info(self, repo_id, *, files_metadata=False, **kwargs):
        assert files_metadata, "sizes need files_metadata=True"
        listed.append(repo_id)
        if repo_id not in repos:
            raise RepositoryNotFoundError(f"{repo_id} not found", response=httpx.Response(
                404, request=httpx.Request("GET", "https://huggingface.co")))
        return SimpleNamespace(siblings=[SimpleNamespace(rfilename=f"f{i}", size=size)
                                         for i, size in enumerate(repos[repo_id])])

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    return SimpleNamespace(repos=repos, listed=listed)


def test_custom_checkpoints_are_size_checked_before_download(custom_url, hub_listing, checkpoint,
                                                             tmp_path):
    props = component_props(custom_url, "checkpoint")
    assert props["allow_custom_value"] is True
    client = Client(custom_url, verbose=False)
    hub_listing.repos["someone/huge"] = [GB, GB // 2]  # 1.5 GB in two files
    with pytest.raises(AppError, match=r"holds 1.5 GB; this server loads checkpoints up to 1 GB"):
        run(client, "someone/huge")
    assert hub_listing.listed == ["someone/huge"]

    with pytest.raises(AppError, match="not a public model repository"):
        run(client, "someone/missing")
    with pytest.raises(AppError, match="neither a checkpoint folder on this server nor a hub "
                                       "repository id"):
        run(client, "not a repo id!")

    big = tmp_path / "big-checkpoint"
    big.mkdir()
    with open(big / "model.safetensors", "wb") as f:
        f.truncate(2 * GB)  # sparse: 2 GB by size, nothing on disk
    with pytest.raises(AppError, match="holds 2.0 GB") as refused:
        run(client, str(big))
    assert str(tmp_path) not in str(refused.value)

    hub_listing.repos["someone/small"] = [1000]
    # Small enough, so it goes on to the loader: offline here, so the hub fetch fails with a
    # clear message (nothing was downloaded before the size was known).
    with pytest.raises(AppError) as loading:
        run(client, "someone/small")
    assert "holds" not in str(loading.value)
    assert run(client, checkpoint).answer.strip()  # a local folder: allowed, loaded


# --- 2. limits on what a visitor sends -------------------------------------------------------
@pytest.fixture(scope="module")
def limited_url(app_environ: dict[str, str]):
    with serve({**app_environ, "SEGEARTH_MAX_UPLOAD_MB": "1",
                "SEGEARTH_MAX_IMAGE_MEGAPIXELS": "1", "SEGEARTH_MAX_GEOTIFF_SIDE": "200",
                "SEGEARTH_MAX_QUESTION_CHARS": "40"}) as url:
        yield url


def test_limits_refuse_with_a_message_and_the_app_keeps_serving(limited_url, checkpoint,
                                                                utm_geotiff, plain_image,
                                                                tmp_path):
    client = Client(limited_url, verbose=False)
    short = functools.partial(run, question="Where could a plane land?")
    with pytest.raises(AppError, match="has 41 characters; this server takes at most 40"):
        run(client, checkpoint, question="x" * 41)

    large = tmp_path / "large.png"
    Image.new("RGB", (1250, 1000), (90, 120, 80)).save(large)  # 1.25 MP, a small file
    with pytest.raises(AppError, match=r"large.png has 1.2 megapixels; this server takes images "
                                       r"up to 1 megapixels") as refused:
        short(client, checkpoint, source="upload", upload=large)
    assert "/" not in str(refused.value).split("large.png")[0]  # no server path before the name

    with pytest.raises(AppError, match=r"utm.tif is 256 x 192 pixels; this server reads GeoTIFFs "
                                       r"up to 200 pixels a side"):
        client.predict(handle_file(str(utm_geotiff)), api_name="/preview")

    heavy = tmp_path / "heavy.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (800, 800, 3), dtype=np.uint8)).save(heavy)  # ~1.9 MB
    assert heavy.stat().st_size > 1024 ** 2
    with pytest.raises(ValueError, match="exceeds the maximum file size of 1048576 bytes"):
        short(client, checkpoint, source="upload", upload=heavy)  # the client knows the cap
    with heavy.open("rb") as f:  # and the server enforces it for anyone who does not ask
        answer = httpx.post(f"{limited_url}gradio_api/upload", files={"files": f}, timeout=60)
    assert answer.status_code == 413 and "maximum allowed size" in answer.text

    assert component_props(limited_url, "question")["max_length"] == 40
    result = short(client, checkpoint, source="upload", upload=plain_image)  # within the limits
    assert Image.open(files(result)["plain_mask.png"]).size == (300, 200)


# --- 3. the queue tells waiting visitors where they stand --------------------------------------
def test_waiting_visitors_see_their_queue_position_and_an_estimate(app_url, checkpoint,
                                                                  monkeypatch):
    ask = LoadedModel.ask

    def slow_ask(self, *args, **kwargs):
        time.sleep(0.8)  # long enough that the others wait in the queue
        return ask(self, *args, **kwargs)

    monkeypatch.setattr(LoadedModel, "ask", slow_ask)
    run(Client(app_url, verbose=False), checkpoint)  # one finished run gives the estimate
    clients = [Client(app_url, verbose=False) for _ in range(4)]
    jobs = [c.submit("map", AREA, None, f"Where could a plane land? ({i})", checkpoint, "fp32",
                     False, checkpoint, "fp32", 0.5, 0.5, api_name="/run")
            for i, c in enumerate(clients)]
    seen: list = []
    while not all(job.done() for job in jobs):
        seen += [job.status() for job in jobs]
        time.sleep(0.05)
    queued = [s for s in seen if s.code == Status.IN_QUEUE and s.rank is not None]
    assert max(s.rank for s in queued) >= 2, "the last visitor should wait behind others"
    assert any(s.eta is not None and s.eta > 0 for s in queued), "no estimate was shown"
    assert [job.result()[2].strip() != "" for job in jobs] == [True] * len(jobs)


def test_a_full_queue_turns_visitors_away_with_a_message(app_environ, checkpoint, monkeypatch):
    ask = LoadedModel.ask

    def slow_ask(self, *args, **kwargs):
        time.sleep(1.5)
        return ask(self, *args, **kwargs)

    monkeypatch.setattr(LoadedModel, "ask", slow_ask)
    with serve({**app_environ, "SEGEARTH_QUEUE_SIZE": "1"}) as url:
        jobs = [Client(url, verbose=False).submit(
            "map", AREA, None, f"Where could a plane land? ({i})", checkpoint, "fp32", False,
            checkpoint, "fp32", 0.5, 0.5, api_name="/run") for i in range(4)]
        outcomes = []
        for job in jobs:
            try:
                outcomes.append("answered" if job.result(timeout=120)[2].strip() else "empty")
            except Exception as err:  # noqa: BLE001 - the turned-away ones
                outcomes.append("full" if "Queue is full" in str(err) else repr(err))
    assert "answered" in outcomes and "full" in outcomes, outcomes
    assert set(outcomes) == {"answered", "full"}, outcomes


# --- 4. no leaks between sessions -------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_url(app_environ: dict[str, str]):
    """The app with the bundled (trained) demo model, whose masks differ between scenes."""
    with serve({**app_environ, "SEGEARTH_DEMO_CHECKPOINT": DEMO}) as url:
        yield url


def outputs(result) -> tuple[np.ndarray, np.ndarray, dict]:
    names = files(result)
    stem = next(n for n in names if n.endswith(".json")).removesuffix(".json")
    return (np.asarray(Image.open(names[f"{stem}_mask.png"])),
            np.asarray(Image.open(names[f"{stem}_probability.png"])), record(result))


def test_interleaved_sessions_each_get_their_own_image(demo_url):
    runway, river = EXAMPLES / "synthetic_runway.png", EXAMPLES / "synthetic_river.png"
    first, follow_up = "Where could a plane land safely in this area?", "Where is the river?"
    a, b = Client(demo_url, verbose=False), Client(demo_url, verbose=False)
    a1 = outputs(run(a, DEMO_LABEL, source="upload", upload=runway, question=first))
    b1 = outputs(run(b, DEMO_LABEL, source="upload", upload=river, question=first))
    a2 = outputs(run(a, DEMO_LABEL, source="upload", upload=runway, question=follow_up))
    assert a2[2]["app_timings_s"]["encode"] is not None  # B's image came in between
    b_render = outputs(render(b, threshold=0.5))
    a_render = outputs(render(a, threshold=0.5))

    # Each alone, in a fresh session after the other image was encoded.
    alone = {}
    for image, question in ((runway, first), (river, first), (runway, follow_up)):
        other = river if image == runway else runway
        solo = Client(demo_url, verbose=False)
        run(solo, DEMO_LABEL, source="upload", upload=other, question=first)
        alone[image.name, question] = outputs(run(solo, DEMO_LABEL, source="upload", upload=image,
                                                  question=question))
    for got, key in ((a1, (runway.name, first)), (b1, (river.name, first)),
                     (a2, (runway.name, follow_up))):
        mask, probability, meta = alone[key]
        assert np.array_equal(got[0], mask) and np.array_equal(got[1], probability), key
        assert got[2]["question"] == key[1] and got[2]["image"]["size"] == meta["image"]["size"]
    assert not np.array_equal(a1[1], b1[1])  # the two scenes really differ
    # Slider re-renders read each visitor's own last run.
    assert a_render[2]["question"] == follow_up and np.array_equal(a_render[0], a2[0])
    assert b_render[2]["question"] == first and np.array_equal(b_render[0], b1[0])


def test_set_image_and_predict_are_atomic_per_model(monkeypatch):
    """Threads sharing one model, each with its own image, get what each gets alone."""
    model = ModelCache().get(DEMO, "fp32")
    images = [np.asarray(Image.open(EXAMPLES / name).convert("RGB")) for name in
              ("synthetic_runway.png", "synthetic_river.png", "synthetic_track.png")]
    question = "Where could a plane land safely in this area?"
    alone = [model.ask(image, question, 0.5)[0].probability for image in images]
    errors: list[str] = []
    set_image = model.predictor.set_image

    def slow_set_image(image):  # a GPU encoder returns late: others run meanwhile
        set_image(image)
        time.sleep(0.02)

    monkeypatch.setattr(model.predictor, "set_image", slow_set_image)

    def worker(i: int) -> None:
        for _ in range(6):
            try:
                probability = model.ask(images[i], question, 0.5)[0].probability
            except Exception as err:  # noqa: BLE001 - e.g. a prompt cache another thread grew
                errors.append(f"thread {i}: {err!r}")
                return
            if not np.array_equal(probability, alone[i]):
                errors.append(f"thread {i} got another image's result")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert isinstance(model.predictor, Predictor)


def test_every_run_logs_one_json_line(app_url, checkpoint, caplog):
    client = Client(app_url, verbose=False)
    with caplog.at_level("INFO", logger="segearth.app.runs"):
        run(client, checkpoint)
        with pytest.raises(AppError):
            run(client, checkpoint, area="")
        time.sleep(0.2)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "segearth.app.runs"]
    assert [line["outcome"] for line in lines] == ["ok", "error"]
    ok, failed = lines
    assert ok["checkpoint"] == checkpoint and ok["precision"] == "fp32"
    assert {"imagery", "load", "encode", "mask", "answer"} <= set(ok["stages_s"]) and ok["total_s"] > 0
    assert ok["error_kind"] is None and failed["error_kind"] == "InputError"
    assert "question" not in ok  # the visitor's words stay out of the operator's log
