"""Files the app serves itself (vendored Leaflet and Leaflet.draw, the map script, example images).

Gradio serves registered static paths at ``gradio_api/file=<absolute path>``; the map's script
and stylesheet tags use these URLs so that nothing is ever fetched from a CDN.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from segearth.vendor import LEAFLET_DIR

APP_DIR = Path(__file__).resolve().parent
STATIC_DIR = APP_DIR / "static"
VENDOR_DIR = STATIC_DIR / "vendor"


def static_url(path: Path) -> str:
    """The URL the browser loads `path` from. Relative, so the app also works under a proxy
    prefix (Spaces, reverse proxies)."""
    return f"gradio_api/file={Path(path).resolve()}"


def register(*extra: Path) -> None:
    """Let Gradio serve the static folder and `extra` folders without copying them."""
    gr.set_static_paths([STATIC_DIR, LEAFLET_DIR, *extra])
