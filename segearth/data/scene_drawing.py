"""Procedural aerial-looking scenes: a land-cover background and drawable features.

Every feature drawer paints into an RGB uint8 image in place and returns the boolean mask of
the pixels that belong to the feature (context it needs, such as the river under a bridge, is
painted but left out of the mask). Drawers take all randomness from the generator they are
given, so a scene is a pure function of its seed.

Why features look the way they do: the synthetic set exists so that a tiny model can learn the
question -> region mapping in minutes on a CPU, so each category has its own colour, texture
and shape (blue water, red track ring, white greenhouse rows, ...) rather than photo realism.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

Rng = np.random.Generator
Colour = tuple[int, int, int]
Drawer = Callable[[np.ndarray, Rng], np.ndarray]

WATER: Colour = (45, 85, 130)
GRASS: Colour = (95, 125, 65)
DRY_GRASS: Colour = (150, 145, 95)
SOIL: Colour = (135, 110, 85)
WHITE: Colour = (235, 235, 235)


# --- primitives ----------------------------------------------------------------------------------


def smooth_noise(height: int, width: int, cells: int, rng: Rng) -> np.ndarray:
    """Noise in [0, 1] that varies over about ``cells`` blobs per side (upsampled random grid)."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def jitter(colour: Colour, rng: Rng, amount: int = 12) -> Colour:
    """The colour shifted a little, so instances of one category are not all identical."""
    shifted = np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return tuple(int(value) for value in shifted)


def paint(
    image: np.ndarray, mask: np.ndarray, colour: Colour, rng: Rng, grain: float = 6.0
) -> None:
    """Fill the mask with the colour plus per-pixel grain (sensor-noise look)."""
    count = int(mask.sum())
    noise = rng.standard_normal((count, 1), dtype=np.float32) * grain
    image[mask] = np.clip(np.asarray(colour, np.float32) + noise, 0, 255).astype(np.uint8)


def polygon_mask(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def axes(angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along and across a feature turned by ``angle`` (radians, image axes)."""
    return np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])


def rotated_rect(cx: float, cy: float, length: float, width: float, angle: float) -> np.ndarray:
    """Corners of a rectangle centred at (cx, cy) whose long side points along ``angle``."""
    along, across = axes(angle)
    along, across = along * length / 2, across * width / 2
    centre = np.array([cx, cy])
    return np.array(
        [
            centre - along - across,
            centre + along - across,
            centre + along + across,
            centre - along + across,
        ]
    )


def obround(cx: float, cy: float, straight: float, radius: float, angle: float) -> np.ndarray:
    """Outline of a running-track shape: two half circles joined by straights."""
    direction = axes(angle)[0]
    points = []
    for sign, start in ((1, -90), (-1, 90)):
        centre = np.array([cx, cy]) + sign * direction * straight / 2
        for theta in np.radians(np.arange(start, start + 181, 10) + np.degrees(angle)):
            points.append(centre + radius * np.array([np.cos(theta), np.sin(theta)]))
    return np.array(points)


def blob(cx: float, cy: float, radius: float, rng: Rng, roughness: float = 0.2) -> np.ndarray:
    """An irregular closed outline: a circle whose radius wobbles with a few random harmonics."""
    theta = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    wobble = sum(
        rng.uniform(0, roughness / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        for k in range(2, 6)
    )
    r = radius * (1 + wobble)
    return np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], axis=1)


def place(image: np.ndarray, rng: Rng, margin: float = 0.25) -> tuple[float, float, float]:
    """A random centre away from the borders, and the scene's unit length (its shorter side)."""
    height, width = image.shape[:2]
    cx = rng.uniform(margin, 1 - margin) * width
    cy = rng.uniform(margin, 1 - margin) * height
    return cx, cy, float(min(height, width))


@dataclass(frozen=True)
class Footprint:
    """Where a rectangular feature lies: centre, turn, size in pixels and covered pixels."""

    centre: np.ndarray
    angle: float
    length: float
    width: float
    unit: float
    mask: np.ndarray

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        return axes(self.angle)


def place_rect(
    image: np.ndarray,
    rng: Rng,
    length: tuple[float, float],
    width: tuple[float, float],
    margin: float = 0.25,
) -> Footprint:
    """A randomly placed and turned rectangle; sizes are ranges in units of the shorter side."""
    cx, cy, unit = place(image, rng, margin)
    angle = rng.uniform(0, np.pi)
    size = rng.uniform(*length) * unit, rng.uniform(*width) * unit
    mask = polygon_mask(image.shape, rotated_rect(cx, cy, *size, angle))
    return Footprint(np.array([cx, cy]), angle, *size, unit, mask)


def lines(
    layer: np.ndarray,
    segments: list[tuple[np.ndarray, np.ndarray]],
    colour: Colour,
    thickness: int = 1,
) -> None:
    for start, end in segments:
        cv2.line(
            layer,
            tuple(int(v) for v in np.round(start)),
            tuple(int(v) for v in np.round(end)),
            colour,
            thickness,
        )


def outline(layer: np.ndarray, points: np.ndarray, colour: Colour, thickness: int = 1) -> None:
    cv2.polylines(layer, [np.round(points).astype(np.int32)], True, colour, thickness)


def commit(image: np.ndarray, layer: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy the decorated layer into the image inside the mask only, so the mask stays exact."""
    image[mask] = layer[mask]
    return mask


# --- background ----------------------------------------------------------------------------------


def draw_background(height: int, width: int, rng: Rng) -> np.ndarray:
    """Patches of grass, dry grass and bare soil with grain: land that is never a target."""
    cells = int(rng.integers(2, 5))
    weights = np.stack([smooth_noise(height, width, cells, rng) for _ in range(3)])
    cover = weights.argmax(axis=0)
    palette = np.array([jitter(c, rng, 8) for c in (GRASS, DRY_GRASS, SOIL)], np.float32)
    image = palette[cover]
    image += (smooth_noise(height, width, 12, rng)[..., None] - 0.5) * 24
    image += rng.standard_normal((height, width, 1), dtype=np.float32) * 5.0
    return np.clip(image, 0, 255).astype(np.uint8)


# --- water ---------------------------------------------------------------------------------------


def _river_course(image: np.ndarray, rng: Rng) -> tuple[np.ndarray, np.ndarray]:
    """Centre line (N x 2) from one border to the opposite one, and its half-widths."""
    height, width = image.shape[:2]
    unit = min(height, width)
    t = np.linspace(0, 1, 60)
    wave = np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * t + rng.uniform(0, 1)))
    offset = rng.uniform(0.35, 0.65) + rng.uniform(0.06, 0.12) * wave * unit / max(height, width)
    if rng.random() < 0.5:  # west -> east
        points = np.stack([t * width, offset * height], axis=1)
    else:  # north -> south
        points = np.stack([offset * width, t * height], axis=1)
    base = rng.uniform(0.035, 0.055) * unit
    half_widths = base * (
        1 + 0.25 * np.sin(2 * np.pi * (t * rng.uniform(1, 2) + rng.uniform(0, 1)))
    )
    return points, half_widths


def _paint_river(image: np.ndarray, rng: Rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    points, half_widths = _river_course(image, rng)
    mask = np.zeros(image.shape[:2], np.uint8)
    for a, b, r in zip(points[:-1], points[1:], half_widths[:-1]):
        cv2.line(mask, tuple(int(v) for v in a), tuple(int(v) for v in b), 1, max(2, int(2 * r)))
    mask = mask.astype(bool)
    paint(image, mask, jitter(WATER, rng), rng, grain=4)
    return mask, points, half_widths


def draw_river(image: np.ndarray, rng: Rng) -> np.ndarray:
    return _paint_river(image, rng)[0]


def draw_pond(image: np.ndarray, rng: Rng) -> np.ndarray:
    cx, cy, unit = place(image, rng)
    mask = polygon_mask(image.shape, blob(cx, cy, rng.uniform(0.08, 0.13) * unit, rng, 0.25))
    paint(image, mask, jitter((38, 72, 122), rng), rng, grain=4)
    return mask


def _paint_lake(image: np.ndarray, rng: Rng, radius: float) -> tuple[np.ndarray, float, float]:
    cx, cy, unit = place(image, rng, margin=0.35)
    mask = polygon_mask(image.shape, blob(cx, cy, radius * unit, rng, 0.3))
    layer = image.copy()
    paint(layer, mask, jitter(WATER, rng), rng, grain=4)
    ripples = (smooth_noise(*image.shape[:2], 8, rng) - 0.5) * 16
    layer[mask] = np.clip(layer[mask] + ripples[mask][:, None], 0, 255).astype(np.uint8)
    commit(image, layer, mask)
    return mask, cx, cy


def draw_lake(image: np.ndarray, rng: Rng) -> np.ndarray:
    return _paint_lake(image, rng, rng.uniform(0.24, 0.32))[0]


def draw_island(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A lake (context) with land in its middle; only the land is the island."""
    radius = rng.uniform(0.28, 0.34)
    _, cx, cy = _paint_lake(image, rng, radius)
    unit = min(image.shape[:2])
    island = blob(cx, cy, radius * rng.uniform(0.35, 0.5) * unit, rng, 0.15)
    mask = polygon_mask(image.shape, island)
    layer = image.copy()
    paint(layer, mask, jitter((190, 175, 130), rng, 8), rng)  # sandy shore
    inland = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    paint(layer, inland, jitter((60, 105, 50), rng, 8), rng, grain=10)  # trees
    return commit(image, layer, mask)


def draw_bridge(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A river (context) crossed by a light deck; only the deck is the bridge."""
    _, points, half_widths = _paint_river(image, rng)
    index = int(rng.integers(len(points) * 3 // 10, len(points) * 7 // 10))
    tangent = points[index + 1] - points[index - 1]
    across = np.arctan2(tangent[1], tangent[0]) + np.pi / 2
    unit = min(image.shape[:2])
    deck = rotated_rect(*points[index], 2 * half_widths[index] + 0.08 * unit, 0.035 * unit, across)
    mask = polygon_mask(image.shape, deck)
    layer = image.copy()
    paint(layer, mask, jitter((190, 188, 180), rng, 8), rng, grain=3)
    outline(layer, deck, (120, 120, 115))
    return commit(image, layer, mask)


# --- transport ---------------------------------------------------------------------------------


def draw_runway(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A long grey strip with a dashed centre line and threshold bars at both ends."""
    strip = place_rect(image, rng, (0.75, 0.9), (0.07, 0.09), margin=0.4)
    layer = image.copy()
    paint(layer, strip.mask, jitter((145, 145, 145), rng, 8), rng, grain=4)
    along, across = strip.axes
    centre, length, unit = strip.centre, strip.length, strip.unit
    dashes = [
        (centre + along * s, centre + along * (s + 0.03 * unit))
        for s in np.arange(-0.36, 0.33, 0.06) * unit
    ]
    bars = [
        (
            centre + sign * along * 0.42 * length + across * o,
            centre + sign * along * 0.47 * length + across * o,
        )
        for sign in (-1, 1)
        for o in np.linspace(-0.35, 0.35, 5) * strip.width
    ]
    lines(layer, dashes + bars, WHITE, 1)
    return commit(image, layer, strip.mask)


def draw_road(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A dark asphalt band with a yellow centre line, crossing the scene along a gentle curve."""
    height, width = image.shape[:2]
    unit = min(height, width)
    t = np.linspace(0, 1, 40)[:, None]
    start = np.array([0, rng.uniform(0.2, 0.8) * height])
    end = np.array([width, rng.uniform(0.2, 0.8) * height])
    bend = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.1, 0.9) * height])
    points = (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t**2 * end
    if rng.random() < 0.5:  # north -> south instead
        points = points[:, ::-1] * np.array([width / height, height / width])
    points = np.round(points).astype(np.int32)
    mask = np.zeros((height, width), np.uint8)
    cv2.polylines(mask, [points], False, 1, max(3, int(rng.uniform(0.03, 0.045) * unit)))
    mask = mask.astype(bool)
    layer = image.copy()
    paint(layer, mask, jitter((72, 72, 78), rng, 6), rng, grain=3)
    cv2.polylines(layer, [points], False, (205, 190, 90), 1)
    return commit(image, layer, mask)


def draw_parking_lot(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A grey lot with white stall lines and rows of coloured cars."""
    lot = place_rect(image, rng, (0.24, 0.3), (0.15, 0.2))
    layer = image.copy()
    paint(layer, lot.mask, jitter((115, 115, 120), rng, 6), rng, grain=3)
    along, across = lot.axes
    stall, width = 0.028 * lot.unit, lot.width
    for row in (-0.25, 0.25):
        row_centre = lot.centre + across * row * width
        for s in np.arange(-lot.length / 2 + stall, lot.length / 2 - stall / 2, stall):
            start = row_centre + along * s
            lines(layer, [(start - across * 0.2 * width, start + across * 0.2 * width)], WHITE)
            if rng.random() < 0.65:
                car = rotated_rect(
                    *(start + along * stall / 2), 0.3 * width, stall * 0.6, lot.angle + np.pi / 2
                )
                cv2.fillPoly(
                    layer, [np.round(car).astype(np.int32)], jitter((128, 128, 128), rng, 110)
                )
    return commit(image, layer, lot.mask)


# --- buildings and facilities ------------------------------------------------------------------


def draw_building(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A cluster of roofs (red, grey or beige) with shadows; the roofs are the target."""
    cx, cy, unit = place(image, rng)
    angle = rng.uniform(0, np.pi / 2)
    roofs = []
    for _ in range(int(rng.integers(4, 9))):
        x, y = cx + rng.uniform(-0.16, 0.16) * unit, cy + rng.uniform(-0.16, 0.16) * unit
        size = rng.uniform(0.045, 0.09) * unit
        roofs.append(
            rotated_rect(x, y, size, size * rng.uniform(0.6, 1.0), angle + rng.normal(0, 0.05))
        )
    for roof in roofs:  # shadows fall to the south-east and are not part of the target
        cv2.fillPoly(image, [np.round(roof + 0.012 * unit).astype(np.int32)], (50, 50, 48))
    mask = np.zeros(image.shape[:2], bool)
    palettes = ((165, 70, 60), (170, 170, 175), (205, 195, 180))
    for roof in roofs:
        roof_mask = polygon_mask(image.shape, roof)
        paint(image, roof_mask, jitter(palettes[int(rng.integers(3))], rng, 10), rng, grain=4)
        mask |= roof_mask
    return mask


def draw_storage_tank(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A row or cluster of white round tanks with dark rims and shadows."""
    cx, cy, unit = place(image, rng)
    mask = np.zeros(image.shape[:2], np.uint8)
    tanks = []
    for _ in range(int(rng.integers(2, 6))):
        x, y = cx + rng.uniform(-0.14, 0.14) * unit, cy + rng.uniform(-0.14, 0.14) * unit
        tanks.append((int(x), int(y), max(3, int(rng.uniform(0.035, 0.06) * unit))))
    shadow = max(1, int(0.012 * unit))
    for x, y, r in tanks:
        cv2.circle(image, (x + shadow, y + shadow), r, (45, 45, 45), -1)
    for x, y, r in tanks:
        cv2.circle(mask, (x, y), r, 1, -1)
    mask = mask.astype(bool)
    layer = image.copy()
    paint(layer, mask, jitter((228, 228, 222), rng, 6), rng, grain=3)
    for x, y, r in tanks:
        cv2.circle(layer, (x, y), r, (150, 150, 150), 1)
    return commit(image, layer, mask)


def draw_greenhouse(image: np.ndarray, rng: Rng) -> np.ndarray:
    """Parallel rows of long white plastic tunnels with a bright ridge line."""
    cx, cy, unit = place(image, rng)
    angle = rng.uniform(0, np.pi)
    along, across = axes(angle)
    length, width = rng.uniform(0.22, 0.3) * unit, rng.uniform(0.028, 0.036) * unit
    count = int(rng.integers(4, 8))
    mask = np.zeros(image.shape[:2], bool)
    layer = image.copy()
    tunnels = []
    for k in range(count):
        centre = np.array([cx, cy]) + across * (k - (count - 1) / 2) * (width + 3)
        tunnel = rotated_rect(*centre, length, width, angle)
        tunnels.append((centre, tunnel))
        mask |= polygon_mask(image.shape, tunnel)
    paint(layer, mask, jitter((212, 218, 222), rng, 6), rng, grain=4)
    lines(
        layer,
        [(c - along * length / 2, c + along * length / 2) for c, _ in tunnels],
        (245, 248, 250),
    )
    return commit(image, layer, mask)


# --- vegetation --------------------------------------------------------------------------------


def draw_forest(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A dark green patch speckled with tree crowns."""
    cx, cy, unit = place(image, rng)
    mask = polygon_mask(image.shape, blob(cx, cy, rng.uniform(0.16, 0.24) * unit, rng, 0.3))
    layer = image.copy()
    paint(layer, mask, jitter((38, 72, 38), rng, 6), rng, grain=5)
    ys, xs = np.nonzero(mask)
    crowns = rng.integers(0, len(xs), max(1, len(xs) // 25))
    for i in crowns:
        shade = int(rng.integers(45, 95))
        cv2.circle(
            layer,
            (int(xs[i]), int(ys[i])),
            int(rng.integers(2, 4)),
            (shade // 2, shade, shade // 2),
            -1,
        )
    return commit(image, layer, mask)


def draw_farmland(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A grid of rectangular plots, each striped by crop rows in bright green or yellow."""
    cx, cy, unit = place(image, rng)
    angle = rng.uniform(-0.35, 0.35)
    along, across = axes(angle)
    plot = rng.uniform(0.12, 0.17) * unit
    rows, cols = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    mask = np.zeros(image.shape[:2], bool)
    layer = image.copy()
    crops = ((115, 170, 55), (205, 185, 85), (150, 175, 60))
    for r in range(rows):
        for c in range(cols):
            centre = (
                np.array([cx, cy])
                + along * (c - (cols - 1) / 2) * (plot + 3)
                + across * (r - (rows - 1) / 2) * (plot + 3)
            )
            field = rotated_rect(*centre, plot, plot, angle)
            field_mask = polygon_mask(image.shape, field)
            colour = jitter(crops[int(rng.integers(3))], rng, 8)
            paint(layer, field_mask, colour, rng, grain=4)
            stripes = layer.copy()
            darker = tuple(int(v * 0.75) for v in colour)
            step, run = (across, along) if rng.random() < 0.5 else (along, across)
            rows_of_crop = [
                (centre + step * o - run * plot / 2, centre + step * o + run * plot / 2)
                for o in np.arange(-plot / 2, plot / 2, 4)
            ]
            lines(stripes, rows_of_crop, darker)
            layer[field_mask] = stripes[field_mask]
            mask |= field_mask
    return commit(image, layer, mask)


# --- sports grounds ----------------------------------------------------------------------------


def _paint_track(
    layer: np.ndarray, rng: Rng, cx: float, cy: float, straight: float, radius: float, angle: float
) -> np.ndarray:
    """A red running track with white lanes around a green infield; returns its whole area."""
    lane = 0.035 * min(layer.shape[:2])
    mask = polygon_mask(layer.shape, obround(cx, cy, straight, radius, angle))
    infield = polygon_mask(layer.shape, obround(cx, cy, straight, radius - lane, angle))
    paint(layer, mask, jitter((175, 75, 60), rng, 8), rng, grain=4)
    for k in (1, 2):
        outline(layer, obround(cx, cy, straight, radius - k * lane / 3, angle), (230, 220, 215))
    paint(layer, infield, jitter((80, 145, 70), rng, 8), rng, grain=4)
    return mask


def draw_ground_track_field(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A school sports ground: a running track and its infield."""
    cx, cy, unit = place(image, rng, margin=0.3)
    angle = rng.uniform(0, np.pi)
    straight, radius = rng.uniform(0.18, 0.25) * unit, rng.uniform(0.11, 0.14) * unit
    layer = image.copy()
    return commit(image, layer, _paint_track(layer, rng, cx, cy, straight, radius, angle))


def draw_football_field(image: np.ndarray, rng: Rng) -> np.ndarray:
    """A mown-striped green pitch with white touch lines, halfway line and centre circle."""
    pitch = place_rect(image, rng, (0.33, 0.4), (0.22, 0.26), margin=0.3)
    layer = image.copy()
    along, across = pitch.axes
    centre, length, width, angle = pitch.centre, pitch.length, pitch.width, pitch.angle
    light, dark = jitter((95, 175, 75), rng, 6), (70, 148, 58)
    paint(layer, pitch.mask, light, rng, grain=3)
    for k in range(0, 10, 2):  # mowing stripes
        band = rotated_rect(*(centre + along * (k - 4.5) * length / 10), length / 10, width, angle)
        paint(layer, polygon_mask(image.shape, band) & pitch.mask, dark, rng, grain=3)
    outline(layer, rotated_rect(*centre, length * 0.94, width * 0.9, angle), WHITE)
    lines(layer, [(centre - across * width * 0.45, centre + across * width * 0.45)], WHITE)
    cv2.circle(layer, tuple(int(v) for v in centre), int(width * 0.15), WHITE, 1)
    return commit(image, layer, pitch.mask)


def _court(
    image: np.ndarray, rng: Rng, surface: Colour, size: tuple[float, float], count: int
) -> np.ndarray:
    """``count`` side-by-side marked courts; returns their union mask and paints their lines."""
    cx, cy, unit = place(image, rng)
    angle = rng.uniform(0, np.pi)
    length, width = size[0] * unit, size[1] * unit
    along, across = axes(angle)
    mask = np.zeros(image.shape[:2], bool)
    layer = image.copy()
    for k in range(count):
        centre = np.array([cx, cy]) + across * (k - (count - 1) / 2) * width * 1.15
        court = rotated_rect(*centre, length, width, angle)
        court_mask = polygon_mask(image.shape, court)
        paint(layer, court_mask, jitter(surface, rng, 8), rng, grain=3)
        outline(layer, rotated_rect(*centre, length * 0.85, width * 0.75, angle), WHITE)
        lines(layer, [(centre - across * width * 0.375, centre + across * width * 0.375)], WHITE)
        lines(layer, [(centre - along * length * 0.25, centre + along * length * 0.25)], WHITE)
        mask |= court_mask
    return commit(image, layer, mask)


def draw_tennis_court(image: np.ndarray, rng: Rng) -> np.ndarray:
    surface = ((50, 110, 150), (70, 130, 95))[int(rng.integers(2))]
    return _court(image, rng, surface, (0.12, 0.065), int(rng.integers(1, 4)))


def draw_basketball_court(image: np.ndarray, rng: Rng) -> np.ndarray:
    return _court(image, rng, (200, 125, 65), (0.15, 0.085), int(rng.integers(1, 3)))


def draw_stadium(image: np.ndarray, rng: Rng) -> np.ndarray:
    """Grey stands ringed around a running track; the whole bowl is the target."""
    cx, cy, unit = place(image, rng, margin=0.35)
    angle = rng.uniform(0, np.pi)
    straight, radius = rng.uniform(0.16, 0.22) * unit, rng.uniform(0.19, 0.22) * unit
    stands = 0.06 * unit
    mask = polygon_mask(image.shape, obround(cx, cy, straight, radius, angle))
    layer = image.copy()
    paint(layer, mask, jitter((195, 195, 200), rng, 6), rng, grain=8)
    for k in (1, 2, 3):
        outline(layer, obround(cx, cy, straight, radius - k * stands / 4, angle), (150, 150, 155))
    _paint_track(layer, rng, cx, cy, straight, radius - stands, angle)
    return commit(image, layer, mask)


#: Drawer of every category the synthetic generator knows.
DRAWERS: dict[str, Drawer] = {
    "runway": draw_runway,
    "road": draw_road,
    "parking lot": draw_parking_lot,
    "river": draw_river,
    "pond": draw_pond,
    "lake": draw_lake,
    "island": draw_island,
    "bridge": draw_bridge,
    "building": draw_building,
    "storage tank": draw_storage_tank,
    "greenhouse": draw_greenhouse,
    "forest": draw_forest,
    "farmland": draw_farmland,
    "ground track field": draw_ground_track_field,
    "football field": draw_football_field,
    "tennis court": draw_tennis_court,
    "basketball court": draw_basketball_court,
    "stadium": draw_stadium,
}
