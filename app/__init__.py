"""The SegEarth-R1 web app (Gradio 6): draw or upload, ask, see the mask and the answer."""
from __future__ import annotations

import logging

from .ui import LAUNCH_OPTIONS, build_app

__all__ = ["build_app", "main"]


def main() -> None:
    """Start the app; Gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup requests
    build_app().launch(**LAUNCH_OPTIONS)
