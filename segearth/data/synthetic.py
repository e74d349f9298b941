"""A synthetic geospatial reasoning dataset written in the EarthReason layout.

``generate_dataset(out_dir)`` writes ``{out}/{train,val}/{images,labels,QAs}`` (readable with
``read_earthreason``) with procedurally drawn aerial scenes (``scene_drawing``). Each item asks
one implicit question about one target category ("Where could a plane land safely?" -> the
runway) and holds that category's mask; some items ask about a category absent from the scene
(answer list empty, label all zero), as EarthReason does.

Why it exists: to train and test the whole pipeline in minutes on a CPU without the real data.
Targets therefore have distinctive colours, textures and shapes, and the validation split
measures generalisation the way the paper does: it asks with phrasings never seen in training
(``HELD_OUT_QUESTIONS``) and about categories never seen in training (``HELD_OUT_CATEGORIES``,
the paper's four).

Everything is a pure function of the seed: item ``i`` of a split draws from its own generator
seeded with ``(seed, split, i)``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from .scene_drawing import DRAWERS, draw_background

#: Categories never drawn, asked about or mentioned in the training split (the paper's four).
HELD_OUT_CATEGORIES = ("basketball court", "island", "lake", "stadium")

#: Phrasings a category is asked with. For seen categories these are the training phrasings;
#: held-out categories appear only in validation, with these and their HELD_OUT_QUESTIONS.
QUESTIONS: dict[str, tuple[str, ...]] = {
    "runway": (
        "Where could a plane land safely in this area?",
        "Which paved strip would a pilot use to take off?",
        "Where do aircraft speed up before they leave the ground?",
    ),
    "road": (
        "Which route could a delivery truck follow through this scene?",
        "Where can cars drive from one side of the image to the other?",
        "What path would a cyclist take to travel through this area?",
    ),
    "parking lot": (
        "Where could visitors leave their cars?",
        "Which paved area is marked out for parking vehicles?",
        "Where would shoppers look for a free space for their car?",
    ),
    "river": (
        "Where could people go kayaking in this scene?",
        "Which feature carries water downstream through the landscape?",
        "Where might fishermen cast their lines from a boat?",
    ),
    "pond": (
        "Which small body of water could supply a farm's cattle?",
        "Where could ducks rest in this area?",
        "Which still water could irrigate nearby crops during a drought?",
    ),
    "bridge": (
        "Where can cars cross the water?",
        "Which structure lets pedestrians reach the other bank?",
        "Where does the road pass over the river?",
    ),
    "building": (
        "Where do the people of this area live?",
        "Which structures give families shelter from the rain?",
        "Where could a family sleep at night?",
    ),
    "storage tank": (
        "Where could oil be stored in this area?",
        "Which round structures hold liquids or fuel?",
        "Where might a refinery keep its products?",
    ),
    "greenhouse": (
        "Where could vegetables grow during winter?",
        "Which structures keep plants warm under plastic sheeting?",
        "Where might a grower raise seedlings protected from frost?",
    ),
    "forest": (
        "Where could deer hide in this landscape?",
        "Which area would give hikers shade from the sun?",
        "Where could timber be harvested?",
    ),
    "farmland": (
        "Where are crops grown in the open air in this area?",
        "Which land supplies food for the nearby villages?",
        "Where would a tractor plough in spring?",
    ),
    "ground track field": (
        "Where could students run laps?",
        "Where would a school hold its sprint races?",
        "Which place is designed for athletics training?",
    ),
    "football field": (
        "Where could two teams play a soccer match?",
        "Which field has goals at both ends for a ball game?",
        "Where could a youth club train for its next match?",
    ),
    "tennis court": (
        "Where could two friends play a match of tennis?",
        "Which small courts are marked for racket sports?",
        "Where could someone practise their serve?",
    ),
    "lake": (
        "Where could a seaplane land in this scene?",
        "Which large body of water could host a sailing regatta?",
        "Where could a town draw its drinking water from?",
    ),
    "island": (
        "Which piece of land is surrounded by water on all sides?",
        "Where could castaways find dry ground in this lake?",
        "Where could a lighthouse keeper live cut off from the mainland?",
    ),
    "stadium": (
        "Where could thousands of spectators watch a match?",
        "Which venue has stands around its field for big events?",
        "Where would a city host a major sports final?",
    ),
    "basketball court": (
        "Where could teenagers shoot hoops?",
        "Which court is marked for a game of basketball?",
        "Where could a pick-up game with dribbling and dunks take place?",
    ),
}

#: Phrasings used only in validation.
HELD_OUT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "runway": (
        "If a small aircraft had an engine failure nearby, where should it touch down?",
        "Where would an air ambulance jet roll to a stop after landing?",
    ),
    "road": (
        "Where would a bus most likely travel in this area?",
        "Which surface was built for everyday vehicle traffic here?",
    ),
    "parking lot": (
        "Where would drivers stop their cars before walking to the shops?",
        "Where are vehicles left standing in marked rows?",
    ),
    "river": (
        "Which part of the scene could be used to move goods by barge?",
        "Where does the flowing water in this area run?",
    ),
    "pond": (
        "Where could children throw pebbles into calm water?",
        "Which small reservoir could a farmer draw water from?",
    ),
    "bridge": (
        "Where could a train get over the river without a ferry?",
        "Which structure would be closed if floods damaged its supports?",
    ),
    "building": (
        "Which roofs would need repair after a hailstorm?",
        "Where might residents keep their furniture?",
    ),
    "storage tank": (
        "Which structures would be most dangerous if a fire broke out at the depot?",
        "Where could fuel be kept before it is shipped?",
    ),
    "greenhouse": (
        "Where could tomatoes be cultivated out of season?",
        "Which covered rows protect crops from the weather?",
    ),
    "forest": (
        "Which area is most at risk of a wildfire spreading through trees?",
        "Where do birds most likely nest in this scene?",
    ),
    "farmland": (
        "Where could a farmer harvest wheat this summer?",
        "Which plots would need irrigation in a dry season?",
    ),
    "ground track field": (
        "Where could a coach time a 400 metre run?",
        "Where could athletes practise relay handovers?",
    ),
    "football field": (
        "Where could players practise penalty kicks?",
        "Where would a referee blow the whistle for kick-off?",
    ),
    "tennis court": (
        "Where could a doubles match be played?",
        "Where would a coach give racket lessons?",
    ),
    "lake": ("Where could people swim far from any shore?",),
    "island": ("Which area could only be reached by boat?",),
    "stadium": ("Where could a concert for a huge crowd be held?",),
    "basketball court": ("Where could a streetball tournament be held?",),
}

#: Answers in EarthReason's style ("The runway is suitable for landing.").
ANSWERS: dict[str, tuple[str, ...]] = {
    "runway": (
        "The runway is suitable for landing.",
        "The long paved runway is where aircraft take off and land.",
    ),
    "road": (
        "The road is built for vehicles to travel on.",
        "Cars and trucks drive along the road.",
    ),
    "parking lot": (
        "The parking lot is where vehicles are parked.",
        "Cars are left in the marked spaces of the parking lot.",
    ),
    "river": (
        "The river is flowing water suitable for boats.",
        "The river carries water through the landscape.",
    ),
    "pond": ("The pond holds water for animals and crops.", "The small pond is calm, still water."),
    "bridge": ("The bridge crosses the river.", "The bridge carries traffic over the water."),
    "building": ("The buildings provide shelter for people.", "People live in these houses."),
    "storage tank": (
        "The storage tanks hold oil and other liquids.",
        "Fuel is kept in the round storage tanks.",
    ),
    "greenhouse": ("The greenhouses keep crops warm.", "Plants grow under the greenhouse covers."),
    "forest": ("The forest is dense with trees.", "The trees of the forest shelter wildlife."),
    "farmland": ("The farmland is used to grow crops.", "The cultivated fields produce food."),
    "ground track field": (
        "The ground track field is designed for running.",
        "Athletes run laps on the track.",
    ),
    "football field": (
        "The football field is used for playing soccer.",
        "Teams play matches on the football field.",
    ),
    "tennis court": (
        "The tennis courts are built for playing matches.",
        "Players hit the ball across the net on the tennis court.",
    ),
    "lake": ("The lake is a large, calm body of water.", "The lake is wide enough for a seaplane."),
    "island": (
        "The island is land surrounded by water.",
        "The island can only be reached across the lake.",
    ),
    "stadium": ("The stadium seats many spectators.", "Crowds gather in the stadium's stands."),
    "basketball court": (
        "The basketball court is used for playing basketball.",
        "Players shoot hoops on the basketball court.",
    ),
}

#: Categories whose questions another category could also answer ("where could a seaplane
#: land?" fits a river too) share a group; no scene holds two categories of one group, so
#: every question has exactly one right region (or none).
SEMANTIC_GROUPS: dict[str, tuple[str, ...]] = {
    "river": ("water",),
    "pond": ("water",),
    "lake": ("water",),
    "island": ("water",),
    "bridge": ("water", "traffic"),
    "road": ("traffic",),
    "building": ("shelter",),
    "greenhouse": ("shelter", "crops"),
    "farmland": ("crops",),
    "ground track field": ("sports",),
    "football field": ("sports",),
    "tennis court": ("sports",),
    "basketball court": ("sports",),
    "stadium": ("sports",),
}

CATEGORIES = tuple(QUESTIONS)
SEEN_CATEGORIES = tuple(c for c in CATEGORIES if c not in HELD_OUT_CATEGORIES)
SPLITS = ("train", "val")
DEFAULT_EMPTY_FRACTION = 0.15
#: Relative range of each side when ``vary_size`` is on (aspect ratios from 0.5 to 2).
SIZE_RANGE = (0.7, 1.4)


@dataclass(frozen=True)
class SyntheticItem:
    """One generated item in memory, before it is written."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) bool, all False for an empty target
    category: str  # the category the question is about (absent from the scene if empty)
    questions: list[str]
    answers: list[str]  # empty for an empty target


def categories_for(split: str) -> tuple[str, ...]:
    """Categories that may appear (as target, distractor or question) in ``split``."""
    return SEEN_CATEGORIES if split == "train" else CATEGORIES


def question_pool(category: str, split: str) -> tuple[str, ...]:
    """Training uses QUESTIONS; validation uses only phrasings training never saw."""
    if split == "train":
        return QUESTIONS[category]
    if category in HELD_OUT_CATEGORIES:
        return QUESTIONS[category] + HELD_OUT_QUESTIONS[category]
    return HELD_OUT_QUESTIONS[category]


def conflicts(a: str, b: str) -> bool:
    """Whether a question about ``a`` could also be answered by ``b`` (or they are the same)."""
    groups_a = set(SEMANTIC_GROUPS.get(a, (a,)))
    return a == b or bool(groups_a & set(SEMANTIC_GROUPS.get(b, (b,))))


def make_item(
    category: str,
    empty: bool,
    split: str,
    size: tuple[int, int],
    rng: np.random.Generator,
    questions_per_item: int = 3,
) -> SyntheticItem:
    """Draw one scene. The target (if any) is drawn last so that its mask is exactly what shows."""
    height, width = size
    image = draw_background(height, width, rng)
    candidates = [c for c in categories_for(split) if not conflicts(category, c)]
    wanted = int(rng.integers(1, 4))
    distractors: list[str] = []
    for candidate in rng.permutation(candidates):
        if len(distractors) == wanted:
            break
        if not any(conflicts(candidate, chosen) for chosen in distractors):
            distractors.append(str(candidate))
    occupied = np.zeros((height, width), bool)
    for distractor in distractors:
        draw_apart(image, distractor, occupied, rng)
    mask = np.zeros((height, width), bool) if empty else draw_apart(image, category, occupied, rng)
    pool = question_pool(category, split)
    picked = rng.permutation(len(pool))[: min(questions_per_item, len(pool))]
    answers = (
        [] if empty else [ANSWERS[category][i] for i in rng.permutation(len(ANSWERS[category]))]
    )
    return SyntheticItem(image, mask, category, [pool[i] for i in picked], answers)


def draw_apart(
    image: np.ndarray, category: str, occupied: np.ndarray, rng: np.random.Generator, tries: int = 4
) -> np.ndarray:
    """Draw ``category`` where it covers little of what is already drawn; returns its mask.

    Why: features piled on each other (a court in a lake) look unlike aerial scenes and hide
    the distractors. Up to ``tries`` placements are drawn on copies and the one whose mask
    overlaps ``occupied`` least is kept; ``occupied`` then grows by every pixel that drawing
    changed (context such as a bridge's river included).
    """
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(tries):
        candidate = image.copy()
        mask = DRAWERS[category](candidate, rng)
        overlap = float(np.count_nonzero(mask & occupied)) / max(1, np.count_nonzero(mask))
        if best is None or overlap < best[0]:
            best = (overlap, candidate, mask)
        if overlap <= 0.05:
            break
    _, candidate, mask = best
    occupied |= (candidate != image).any(axis=2)
    image[:] = candidate
    return mask


def generate_dataset(
    out_dir: str | Path,
    n_train: int = 400,
    n_val: int = 100,
    image_size: int = 256,
    seed: int = 0,
    empty_fraction: float = DEFAULT_EMPTY_FRACTION,
    vary_size: bool = False,
    questions_per_item: int = 3,
    overwrite: bool = False,
) -> Path:
    """Write the dataset and return ``out_dir``.

    Categories are spread evenly over each split's items; exactly
    ``round(n * empty_fraction)`` items per split are empty targets. With ``vary_size`` each
    image gets its own width and height in ``image_size * SIZE_RANGE`` (non-square, to exercise
    the padding in preprocessing). Existing split folders are an error unless ``overwrite``,
    which deletes them first.
    """
    out_dir = Path(out_dir)
    if not 0 <= empty_fraction <= 1:
        raise InputError(f"empty_fraction must be within [0, 1], got {empty_fraction}.")
    for split in SPLITS:
        split_dir = out_dir / split
        if split_dir.exists() and any(split_dir.iterdir()):
            if not overwrite:
                raise InputError(
                    f"{split_dir} already exists; pick another folder or pass overwrite=True."
                )
            shutil.rmtree(split_dir)
    for split_code, (split, count) in enumerate(zip(SPLITS, (n_train, n_val))):
        split_rng = np.random.default_rng([seed, split_code])
        categories = categories_for(split)
        assigned = [categories[i % len(categories)] for i in range(count)]
        split_rng.shuffle(assigned)
        empty = set(split_rng.permutation(count)[: round(count * empty_fraction)].tolist())
        for index in range(count):
            rng = np.random.default_rng([seed, split_code, index])
            size = _item_size(image_size, vary_size, rng)
            item = make_item(assigned[index], index in empty, split, size, rng, questions_per_item)
            write_item(out_dir / split, f"{split}_{index:05d}", item)
    (out_dir / "synthetic.json").write_text(
        json.dumps(
            {
                "generator": "segearth.data.synthetic",
                "seed": seed,
                "n_train": n_train,
                "n_val": n_val,
                "image_size": image_size,
                "vary_size": vary_size,
                "empty_fraction": empty_fraction,
                "held_out_categories": list(HELD_OUT_CATEGORIES),
            },
            indent=1,
        )
    )
    return out_dir


def _item_size(image_size: int, vary_size: bool, rng: np.random.Generator) -> tuple[int, int]:
    if not vary_size:
        return image_size, image_size
    low, high = SIZE_RANGE
    return tuple(int(round(image_size * rng.uniform(low, high))) for _ in range(2))


def write_item(split_dir: Path, stem: str, item: SyntheticItem) -> None:
    """One item as ``images/{stem}.png``, ``labels/{stem}.png`` (0/255) and ``QAs/{stem}.json``."""
    for folder in ("images", "labels", "QAs"):
        (split_dir / folder).mkdir(parents=True, exist_ok=True)
    Image.fromarray(item.image).save(split_dir / "images" / f"{stem}.png", compress_level=1)
    label = item.mask.astype(np.uint8) * 255
    Image.fromarray(label).save(split_dir / "labels" / f"{stem}.png", compress_level=1)
    qa = {"questions": item.questions, "answer": item.answers, "category": item.category}
    (split_dir / "QAs" / f"{stem}.json").write_text(json.dumps(qa, indent=1))
