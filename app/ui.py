"""The page: layout and event wiring. What each event does lives in `handlers`."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from segearth.runtime import PRECISIONS, Placement, emulated_bf16, resolve_device

from . import messages, static_files
from .config import EXAMPLES_DIR, PRECISION_LABELS, AppConfig
from .handlers import (SOURCE_MAP, SOURCE_UPLOAD, TAB_IMAGE, TAB_MAP, Focus, Handlers, Preview,
                       Shown)
from .map_view import MapView, basemap_layers
from .runs import Questions, RunRequest

UPLOAD_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff"]
#: Height in px of the map and of the image view (its tab twin).
VIEW_HEIGHT = 520
#: No "share" button: it posts to the Hugging Face hub, which an offline laptop cannot reach.
IMAGE_BUTTONS = ["download", "fullscreen"]
INTRO = (
    "# SegEarth-R1: ask about a place\n"
    "Draw a rectangle or polygon on the map (or upload an aerial image or GeoTIFF), ask an "
    "implicit question, and get the region as a mask with a short answer.")
#: The status line is one short paragraph: never a scrolling box (keyboard users could not
#: scroll it).
CSS = "#summary p { margin: 0.3em 0; } #model-status { overflow: visible !important; }"
#: Gradio's default look with text contrast of at least 4.5:1 (WCAG AA, what axe-core checks):
#: its primary buttons are white on orange 500 (2.8:1) and its secondary text (the sliders'
#: ends, "- or -") grey 400 on white (1.9:1); orange 700 and grey 600 read.
THEME = gr.themes.Default().set(
    button_primary_background_fill="*primary_700",
    button_primary_background_fill_hover="*primary_800",
    body_text_color_subdued="*neutral_600",
)
#: Names Gradio's markup gets wrong for assistive technology, set as the page renders: the
#: examples' thumbnails are announced as "Thumbnail 3 of 8" and the upload area as "Click to
#: upload or drop files" while they show other words (a speech user says what they see), and an
#: empty file list's placeholder is a plain div with an aria-label (not allowed without a role).
#: `tests/app/test_accessibility.py` checks the page with axe-core.
ACCESSIBLE_NAMES = """() => {
  const fix = () => {
    document.querySelectorAll("#examples button.thumbnail-item, #upload button.upload-container")
      .forEach((button) => {
        const text = button.innerText.replace(/\\s+/g, " ").trim();
        if (text && button.getAttribute("aria-label") !== text) button.setAttribute("aria-label", text);
      });
    document.querySelectorAll("div.empty[aria-label]:not([role])").forEach((div) => div.setAttribute("role", "img"));
  };
  fix();
  new MutationObserver(fix).observe(document.body, { childList: true, subtree: true });
}"""
#: Options for `launch` (Gradio 6 takes the theme, CSS and scripts there, not in Blocks).
LAUNCH_OPTIONS: dict[str, Any] = {"theme": THEME, "css": CSS, "js": ACCESSIBLE_NAMES}


def launch_options(config: AppConfig) -> dict[str, Any]:
    """`LAUNCH_OPTIONS` plus the upload cap, which Gradio enforces before a file reaches us."""
    return {**LAUNCH_OPTIONS, "max_file_size": f"{config.limits.max_upload_mb}mb"}


def precision_label(precision: str) -> str:
    """How the precision menu names a precision; bf16 is marked slow where this CPU emulates it."""
    label = PRECISION_LABELS.get(precision, precision)
    if precision == "bf16" and emulated_bf16(Placement(resolve_device(None), "bf16")):
        label += " (emulated on this CPU: very slow)"
    return label


def build_app(config: AppConfig | None = None, handlers: Handlers | None = None) -> gr.Blocks:
    """The Gradio app, queued: one model run at a time, slider re-renders alongside; waiting
    visitors see their place in the queue and an estimate (Gradio's status tracker), and past
    `limits.queue_size` waiting runs a visitor is told the queue is full."""
    config = config or AppConfig.from_env()
    h = handlers or Handlers(config)
    # load and warm up the default model at start-up, so the first visitor does not pay for it
    h.models.preload(config.checkpoint, config.precision, config.name_of(config.checkpoint))
    static_files.register(EXAMPLES_DIR)
    precisions = [(precision_label(p), p) for p in PRECISIONS]
    # Labels are the values too: the page (and its config) never carries a server path.
    checkpoints = list(config.checkpoints)
    chosen = config.name_of(config.checkpoint)
    custom = config.allow_custom_checkpoints
    checkpoint_label = "Checkpoint (or a local folder / hub id)" if custom else "Checkpoint"
    lat, lon, zoom = config.map_view

    with gr.Blocks(title="SegEarth-R1", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        banner = gr.Markdown(messages.DEMO_BANNER, visible=config.is_demo(config.checkpoint),
                             elem_id="demo-banner")
        # as of the build, then as of each page load (`/status`): the line is there from the
        # first paint, so nothing below it moves when the load event fills it
        status = gr.Markdown(h.models.status, elem_id="model-status")
        run_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Tabs(selected=TAB_MAP) as tabs:
                    with gr.Tab("Map", id=TAB_MAP):
                        map_view = MapView(
                            basemaps=basemap_layers(config.basemaps),
                            view={"center": [lat, lon], "zoom": zoom}, height=VIEW_HEIGHT,
                            label="Map", elem_id="map")
                    with gr.Tab("Image", id=TAB_IMAGE):
                        image_view = gr.Image(label="Image", type="numpy", format="png",
                                              height=VIEW_HEIGHT, interactive=False,
                                              buttons=IMAGE_BUTTONS,
                                              elem_id="image-view")
                with gr.Column(visible=False) as compare_panel:  # compare mode's results
                    with gr.Row():
                        compare_left = gr.Image(label="First", format="png", interactive=False,
                                                buttons=IMAGE_BUTTONS, elem_id="compare-left")
                        compare_right = gr.Image(label="Second", format="png",
                                                 interactive=False, buttons=IMAGE_BUTTONS,
                                                 elem_id="compare-right")
                    compare_text = gr.Markdown(label="Comparison", elem_id="compare-text")
                examples = gr.Gallery(
                    [(str(e.image), e.question) for e in h.examples], label="Examples (click one)",
                    columns=4, height=360, allow_preview=False, buttons=[],
                    interactive=False, elem_id="examples")
            with gr.Column(scale=2):
                upload = gr.File(label="Upload an image or GeoTIFF", file_types=UPLOAD_TYPES,
                                 elem_id="upload")
                source = gr.Radio([("Area drawn on the map", SOURCE_MAP),
                                   ("Uploaded file", SOURCE_UPLOAD)], value=SOURCE_MAP,
                                  label="Image source", elem_id="source")
                question = gr.Textbox(label="Question", lines=2, elem_id="question",
                                      max_length=config.limits.max_question_chars,
                                      placeholder="If an earthquake struck, where could residents "
                                                  "gather safely?")
                run_button = gr.Button("Run", variant="primary", elem_id="run")
                answer = gr.Textbox(label="Answer", interactive=False, elem_id="answer")
                picker = gr.Radio([], label="Questions about this place (the map shows each as a "
                                            "layer; pick one for its answer, regions and files)",
                                  type="value", visible=False, elem_id="questions")
                regions = gr.Dataframe(
                    headers=messages.REGION_COLUMNS, label="Regions (click one to zoom to it)",
                    interactive=False, max_height=240, elem_id="regions")
                summary = gr.Markdown(label="Summary", elem_id="summary")
                threshold = gr.Slider(0.05, 0.95, value=h.threshold_of(config.checkpoint), step=0.05,
                                      label="Threshold",
                                      elem_id="threshold")
                opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay opacity",
                                    elem_id="opacity")
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False,
                                    elem_id="downloads")
                with gr.Accordion("Model", open=False):
                    checkpoint = gr.Dropdown(checkpoints, value=chosen,
                                             allow_custom_value=custom, label=checkpoint_label,
                                             elem_id="checkpoint")
                    precision = gr.Dropdown(precisions, value=config.precision, label="Precision",
                                            elem_id="precision")
                    compare = gr.Checkbox(label="Compare with a second checkpoint or precision",
                                          elem_id="compare")
                    checkpoint_b = gr.Dropdown(checkpoints, value=chosen,
                                               allow_custom_value=custom, label="Second checkpoint",
                                               visible=False, elem_id="checkpoint-b")
                    precision_b = gr.Dropdown(precisions, value=config.precision,
                                              label="Second precision", visible=False,
                                              elem_id="precision-b")

        shown = Shown(run_state, map_view, image_view, tabs, answer, summary, downloads,
                      compare_panel, compare_left, compare_right, compare_text, regions, picker)
        preview = Preview(map_view, image_view, tabs, source)

        def run(source: str, area: str, upload: str | None, question: str, checkpoint: str,
                precision: str, compare: bool, checkpoint_b: str, precision_b: str,
                threshold: float, opacity: float, earlier: Questions | None, visitor: gr.Request,
                progress: gr.Progress = gr.Progress()) -> Iterator[Shown]:
            """The page's run inputs (the `/run` API's parameters) as one `RunRequest`; `earlier`
            is the visitor's state, the questions already asked (not an API parameter)."""
            request = RunRequest(source, area, upload, question, checkpoint, precision, compare,
                                 checkpoint_b, precision_b, threshold, opacity)
            yield from h.run(request, visitor, progress, earlier)

        # Asking again stops the answer still being decoded for this visitor at once (its own
        # concurrency group, outside the queued runs), and the new run follows as soon as the
        # old one has ended ("always_last": a click while a run is pending is kept, not dropped).
        gr.on([run_button.click, question.submit], h.stop_answers, api_visibility="private",
              concurrency_id="stop", concurrency_limit=None, show_progress="hidden")
        gr.on([run_button.click, question.submit], run, api_name="run",
              inputs=[source, map_view, upload, question, checkpoint, precision, compare,
                      checkpoint_b, precision_b, threshold, opacity, run_state],
              outputs=list(shown),
              trigger_mode="always_last")
        gr.on([threshold.release, opacity.release], h.show, api_name="render",
              inputs=[run_state, threshold, opacity], outputs=list(shown),
              concurrency_id="render", concurrency_limit=4)
        picker.input(h.pick, [run_state, picker, threshold, opacity], list(shown),
                     api_visibility="private")
        regions.select(h.focus, [run_state, threshold, opacity], list(Focus(map_view, image_view, tabs)),
                       api_visibility="private")
        upload.change(h.preview, upload, list(preview), api_name="preview")
        # never queued behind a run
        demo.load(lambda: h.models.status, None, status, api_name="status",
                  concurrency_id="status", concurrency_limit=None, show_progress="hidden")
        map_view.draw(h.drew, None, source, api_visibility="private")
        examples.select(h.pick_example, None, [upload, question], api_visibility="private")
        checkpoint.change(h.picked, checkpoint, [banner, threshold], api_visibility="private")
        compare.change(lambda on: (gr.update(visible=on),) * 2, compare,
                       [checkpoint_b, precision_b], api_visibility="private")
    return demo.queue(default_concurrency_limit=1, max_size=config.limits.queue_size)
