"""The SegEarth-R1 web app (Gradio 6): draw or upload, ask, see the mask and the answer."""
from __future__ import annotations

import logging

from .config import AppConfig
from .ui import build_app, launch_options

__all__ = ["build_app", "main"]


def main() -> None:
    """Start the app; Gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own startup requests
    config = AppConfig.from_env()
    build_app(config).launch(**launch_options(config))
