"""A synthetic geospatial reasoning dataset written in the EarthReason layout.

``generate_dataset(out_dir)`` writes ``{out}/{train,val}/{images,labels,QAs}`` (readable with
``read_earthreason``) with procedurally drawn aerial scenes (``scene_drawing``). Each item asks
implicit questions about one target category ("Where could a plane land safely in this
area?" -> the runway) and holds that category's mask; some items ask about a category absent
from the scene (answer list empty, label all zero), as EarthReason does.

Why it exists: to train and test the whole pipeline in minutes on a CPU without the real data.
Targets therefore have distinctive colours, textures and shapes. The questions come from a
small grammar per category (``synthetic_questions.json``: who does what there, descriptions,
hypothetical situations, places, distractor clauses, word order, typos and casing), so a model
trained on them meets many wordings. The validation split measures generalisation the way the
paper does: it asks with templates and fixed phrasings never seen in training (the same
vocabulary, other sentences) and about categories never seen in training
(``HELD_OUT_CATEGORIES``, the paper's four).

Everything is a pure function of the seed: item ``i`` of a split draws from its own generator
seeded with ``(seed, split, i)``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from .scene_drawing import DRAWERS, draw_background

#: The generator's language (categories held out, semantic groups, the question grammar and
#: the answers), kept as data beside this module; see its ``_comment``.
LANGUAGE_FILE = Path(__file__).with_name("synthetic_questions.json")
_LANGUAGE = json.loads(LANGUAGE_FILE.read_text())
_GRAMMAR: dict[str, dict] = _LANGUAGE["categories"]

#: Categories never drawn, asked about or mentioned in the training split (the paper's four).
HELD_OUT_CATEGORIES: tuple[str, ...] = tuple(_LANGUAGE["held_out_categories"])
#: Fixed phrasings of each category (EarthReason style). For seen categories these are
#: training phrasings; held-out categories appear only in validation.
QUESTIONS: dict[str, tuple[str, ...]] = {c: tuple(g["questions"]) for c, g in _GRAMMAR.items()}
#: Fixed phrasings used only in validation.
HELD_OUT_QUESTIONS: dict[str, tuple[str, ...]] = {
    c: tuple(g["held_out_questions"]) for c, g in _GRAMMAR.items()
}
#: Answers in EarthReason's style ("The runway is suitable for landing.").
ANSWERS: dict[str, tuple[str, ...]] = {c: tuple(g["answers"]) for c, g in _GRAMMAR.items()}
#: Question templates per split: disjoint, over one shared vocabulary.
TEMPLATES: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _LANGUAGE["templates"].items()}
#: Categories whose questions another category could also answer ("where could a seaplane
#: land?" fits a river too) share a group; no scene holds two categories of one group, so
#: every question has exactly one right region (or none).
SEMANTIC_GROUPS: dict[str, tuple[str, ...]] = {
    c: tuple(g) for c, g in _LANGUAGE["semantic_groups"].items()
}
#: Share of questions asked with a fixed phrasing rather than from the grammar.
FIXED_PHRASING_SHARE = 0.15

CATEGORIES = tuple(QUESTIONS)
SEEN_CATEGORIES = tuple(c for c in CATEGORIES if c not in HELD_OUT_CATEGORIES)
SPLITS = ("train", "val")
DEFAULT_EMPTY_FRACTION = 0.15
#: Relative range of each side when ``vary_size`` is on (aspect ratios from 0.5 to 2).
SIZE_RANGE = (0.7, 1.4)
#: Categories a real forest photograph (the CC0 NEON orthophotos the demo model may train on)
#: may itself hold. Items drawn over a photograph never ask about them, since its unlabelled
#: trees, clearings or tracks could answer the question; every other category is absent from
#: the photograph unless drawn on it.
PHOTO_CATEGORIES = ("forest", "farmland", "road")
#: Side of the square cut from a photograph as a background, relative to the item's longer side
#: (the photograph's 10 cm pixels shown from 0.6 to 4 times coarser or finer: a whole 400 px NEON
#: tile on the demo model's 128 px canvas is 3.1 times coarser).
PHOTO_CROP_RANGE = (0.6, 4.0)
#: How far a photograph's brightness, contrast, saturation and each channel's gain are moved
#: (factors), so that one training photograph stands for forests lit and coloured otherwise.
PHOTO_JITTER = {"brightness": (0.75, 1.3), "contrast": (0.8, 1.2), "saturation": (0.7, 1.3),
                "channel": (0.9, 1.1)}


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


def ask(category: str, split: str, rng: np.random.Generator, noisy: bool = True) -> str:
    """One question about ``category`` as ``split`` asks it.

    Training draws from the training templates and fixed phrasings; validation from the
    validation ones only, except for held-out categories, which training never asks about and
    which validation asks with everything. A share of questions gets typos or odd casing
    (``noisy``), as people type.
    """
    grammar = _GRAMMAR[category]
    if split == "train":
        templates, fixed = TEMPLATES["train"], QUESTIONS[category]
    elif category in HELD_OUT_CATEGORIES:
        templates = TEMPLATES["train"] + TEMPLATES["val"]
        fixed = QUESTIONS[category] + HELD_OUT_QUESTIONS[category]
    else:
        templates, fixed = TEMPLATES["val"], HELD_OUT_QUESTIONS[category]
    if rng.random() < FIXED_PHRASING_SHARE:
        question = str(rng.choice(fixed))
    else:
        subject, verb = grammar["acts"][rng.integers(len(grammar["acts"]))]
        slots = {
            "subject": subject,
            "verb": verb,
            "thing": str(rng.choice(grammar["things"])),
            "situation": str(rng.choice(grammar["situations"])),
            "tail": str(rng.choice(_LANGUAGE["tails"])),
            "front": str(rng.choice(_LANGUAGE["fronts"])),
            "lead": str(rng.choice(_LANGUAGE["leads"])),
        }
        question = str(rng.choice(templates)).format(**slots)
        question = question[0].upper() + question[1:]
    return _add_noise(question, rng) if noisy else question


def _add_noise(question: str, rng: np.random.Generator) -> str:
    """Typos (a swapped, dropped, doubled or replaced letter in a word of 4+ letters), casing
    and missing punctuation at the rates the language file gives."""
    rates = _LANGUAGE["typos"]
    if rng.random() < rates["typo"]:
        words = question.split(" ")
        long_words = [i for i, w in enumerate(words) if sum(ch.isalpha() for ch in w) >= 4]
        for index in rng.permutation(long_words)[: int(rng.integers(1, 3))]:
            words[index] = _typo(words[index], rng)
        question = " ".join(words)
    draw = rng.random()
    if draw < rates["lower"]:
        question = question.lower()
    elif draw < rates["lower"] + rates["upper"]:
        question = question.upper()
    if rng.random() < rates["no_punctuation"]:
        question = question.rstrip("?.")
    return question


def _typo(word: str, rng: np.random.Generator) -> str:
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    i = int(rng.choice(letters[:-1]))
    kind = int(rng.integers(4))
    if kind == 0:  # swap with the next character
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:  # drop
        return word[:i] + word[i + 1:]
    if kind == 2:  # double
        return word[:i] + word[i] + word[i:]
    return word[:i] + chr(ord("a") + int(rng.integers(26))) + word[i + 1:]


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
    background: np.ndarray | None = None,
) -> SyntheticItem:
    """Draw one scene. The target (if any) is drawn last so that its mask is exactly what shows.

    ``background`` (an image of ``size``, e.g. `photo_background`) replaces the drawn land; over
    it the scene may hold no distractor at all, so that a bare photograph is asked about too.
    """
    height, width = size
    image = draw_background(height, width, rng) if background is None else background.copy()
    candidates = [c for c in categories_for(split) if not conflicts(category, c)]
    wanted = int(rng.integers(1 if background is None else 0, 4))
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
    questions = list(dict.fromkeys(ask(category, split, rng) for _ in range(questions_per_item)))
    answers = (
        [] if empty else [ANSWERS[category][i] for i in rng.permutation(len(ANSWERS[category]))]
    )
    return SyntheticItem(image, mask, category, questions, answers)


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


@lru_cache(maxsize=8)
def _photo_pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def photo_background(photo: str | Path, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random square of ``photo`` (side `PHOTO_CROP_RANGE` x the item's longer side, at most the
    photograph's shorter side), turned by a multiple of 90 degrees, maybe mirrored, its colours
    moved (`PHOTO_JITTER`), resized to ``size``: real land for a scene."""
    pixels = _photo_pixels(str(photo))
    height, width = size
    side = int(min(max(height, width) * rng.uniform(*PHOTO_CROP_RANGE), *pixels.shape[:2]))
    top = int(rng.integers(pixels.shape[0] - side + 1))
    left = int(rng.integers(pixels.shape[1] - side + 1))
    crop = np.rot90(pixels[top:top + side, left:left + side], int(rng.integers(4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    resized = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((width, height), Image.BILINEAR), np.float32)
    grey = resized.mean(axis=2, keepdims=True)
    resized = grey + (resized - grey) * rng.uniform(*PHOTO_JITTER["saturation"])
    resized = resized * rng.uniform(*PHOTO_JITTER["channel"], size=3)
    mean = resized.mean()
    resized = (resized - mean) * rng.uniform(*PHOTO_JITTER["contrast"]) + mean * rng.uniform(*PHOTO_JITTER["brightness"])
    return np.clip(resized, 0, 255).astype(np.uint8)


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
    photos: Sequence[str | Path] = (),
    photo_fraction: float = 0.0,
) -> Path:
    """Write the dataset and return ``out_dir``.

    Categories are spread evenly over each split's items; exactly
    ``round(n * empty_fraction)`` items per split are empty targets. With ``vary_size`` each
    image gets its own width and height in ``image_size * SIZE_RANGE`` (non-square, to exercise
    the padding in preprocessing). With ``photos`` (real aerial photographs, paths), a share
    ``photo_fraction`` of the items about categories outside `PHOTO_CATEGORIES` is drawn over a
    crop of one of them (`photo_background`) instead of drawn land, so that a model learns that
    real land holds none of the drawn targets. Existing split folders are an error unless
    ``overwrite``, which deletes them first.
    """
    out_dir = Path(out_dir)
    if not 0 <= empty_fraction <= 1:
        raise InputError(f"empty_fraction must be within [0, 1], got {empty_fraction}.")
    if not 0 <= photo_fraction <= 1 or (photo_fraction and not photos):
        raise InputError(f"photo_fraction must be within [0, 1] and needs photos, got {photo_fraction}.")
    photos = [str(p) for p in photos]
    missing = [p for p in photos if not Path(p).is_file()]
    if missing:
        raise InputError(f"photos not found: {missing}")
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
            background = None
            if photos and assigned[index] not in PHOTO_CATEGORIES and rng.random() < photo_fraction:
                background = photo_background(photos[int(rng.integers(len(photos)))], size, rng)
            item = make_item(assigned[index], index in empty, split, size, rng, questions_per_item, background)
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
                "questions_per_item": questions_per_item,
                "photos": photos,
                "photo_fraction": photo_fraction,
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
