"""Pictures of a mask: one look for the CLI files, the app and the reports."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .result import Result

MASK_COLOR = (255, 48, 48)
OUTLINE_COLOR = (0, 229, 255)
#: One region picked out of several (the app's regions table).
HIGHLIGHT_COLOR = (255, 212, 0)
#: Context kept around a region in its close-up (`region_view`), as a share of its size.
REGION_MARGIN = 0.5
#: Smallest side of a region's close-up, in pixels of the image.
MIN_REGION_VIEW = 48


def hex_rgb(colour: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b)."""
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def rgb_hex(colour: tuple[int, int, int]) -> str:
    """(r, g, b) -> '#rrggbb', as web maps (Leaflet, folium) take colours."""
    return "#{:02x}{:02x}{:02x}".format(*colour)


#: One colour per question where several share a map (the notebook map, the app's question
#: layers), in asking order: masks, outlines and legends share it. The first is `MASK_COLOR`, so
#: a single question looks as in the files; then matplotlib's tab10 without its red and grey.
QUESTION_COLORS = (rgb_hex(MASK_COLOR), "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf",
                   "#e377c2", "#8c564b", "#bcbd22")


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of `mask` that touch background (4-neighbourhood): a one-pixel boundary."""
    padded = np.pad(mask, 1, mode="constant")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def blend(image: np.ndarray, mask: np.ndarray, opacity: float = 0.45,
          color: tuple[int, int, int] = MASK_COLOR, edges: bool = True) -> np.ndarray:
    """The image with the mask tinted at `opacity` and, with `edges`, its outline drawn solid."""
    out = image.astype(np.float32)
    out[mask] = (1 - opacity) * out[mask] + opacity * np.asarray(color, np.float32)
    if edges:
        out[outline(mask)] = OUTLINE_COLOR
    return out.round().astype(np.uint8)


def probability_image(probability: np.ndarray) -> np.ndarray:
    """Probability in [0, 1] -> 8-bit grey (0..255), for a PNG anyone can open."""
    return np.round(np.clip(probability, 0.0, 1.0) * 255).astype(np.uint8)


def region_view(result: Result, rank: int, opacity: float = 0.45,
                color: tuple[int, int, int] = MASK_COLOR) -> np.ndarray:
    """A close-up of the region of ``rank`` (1 = the largest) for a plain image, which has no
    map to zoom: the blended image cropped around the region with `REGION_MARGIN` of context
    (at least `MIN_REGION_VIEW` pixels a side where the image allows), the region's outline
    drawn in `HIGHLIGHT_COLOR` (a map's highlight)."""
    col0, row0, col1, row1 = result.regions[rank - 1].bbox
    height, width = result.mask.shape
    pad_x = max(round((col1 - col0) * REGION_MARGIN), (MIN_REGION_VIEW - (col1 - col0)) // 2, 0)
    pad_y = max(round((row1 - row0) * REGION_MARGIN), (MIN_REGION_VIEW - (row1 - row0)) // 2, 0)
    rows = slice(max(0, row0 - pad_y), min(height, row1 + pad_y))
    cols = slice(max(0, col0 - pad_x), min(width, col1 + pad_x))
    image = blend(result.geo.image, result.mask, opacity, color)
    image[outline(result.labels == rank)] = HIGHLIGHT_COLOR
    return image[rows, cols]
