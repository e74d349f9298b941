"""EarthReason reader: ``{split}/images``, ``{split}/labels`` and ``{split}/QAs`` paired by stem.

The authors' loader sorts the three folders independently and pairs them by index, so one
missing or extra file shifts every later pair onto the wrong mask without a word. Pairing by
file stem gives the same pairs on the released data and fails loudly on anything else.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

from ..errors import InputError
from .masks import load_label_mask
from .pairs import expand_question_pairs
from .types import Sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
LABEL_SUFFIXES = (".png",)
QA_SUFFIXES = (".json",)

#: Scene names (Million-AID style, as EarthReason image names use them) that a file name such as
#: ``basketball_court_0042.jpg`` may start with. Only these count, so that generic names like
#: ``image_001`` do not invent a category.
KNOWN_SCENE_CATEGORIES = frozenset(
    {
        "airport",
        "apartment",
        "apron",
        "bare land",
        "baseball field",
        "basketball court",
        "beach",
        "bridge",
        "cemetery",
        "church",
        "commercial area",
        "dam",
        "desert",
        "detached house",
        "dry field",
        "farmland",
        "football field",
        "forest",
        "golf course",
        "greenhouse",
        "ground track field",
        "helipad",
        "ice land",
        "intersection",
        "island",
        "lake",
        "meadow",
        "mine",
        "mobile home park",
        "oil field",
        "orchard",
        "paddy field",
        "parking lot",
        "pier",
        "pond",
        "quarry",
        "railway",
        "river",
        "road",
        "rock land",
        "roundabout",
        "runway",
        "solar power plant",
        "sparse shrub land",
        "stadium",
        "storage tank",
        "substation",
        "swimming pool",
        "tennis court",
        "terraced field",
        "train station",
        "viaduct",
        "wastewater plant",
        "wind turbine",
        "works",
    }
)

_NAME_WITH_NUMBER = re.compile(r"^([a-z]+(?:[ _-][a-z]+)*)[ _-]*\d+(?:[ _-]\d+)*$")

#: The folder layout shared by EarthReason splits and user folders, for error messages.
FOLDER_LAYOUT = (
    "images/*.jpg|png, labels/*.png (non-zero = target) and QAs/*.json with keys 'questions' "
    "(list) and 'answer' (list; empty = no target), one file of each per stem"
)


def category_from_stem(stem: str) -> str | None:
    """The scene category a file name carries (``lake_12`` -> ``lake``), else None."""
    match = _NAME_WITH_NUMBER.match(stem.lower())
    if match is None:
        return None
    name = re.sub(r"[_-]", " ", match.group(1))
    return name if name in KNOWN_SCENE_CATEGORIES else None


def find_split_dir(root: str | Path, split: str) -> Path:
    """The folder holding ``images/`` and ``QAs/`` for ``split``, searched where people put it."""
    root = Path(root)
    candidates = [
        root / split,
        root / "RSReasonSeg" / split,
        root / "rs_reason_seg" / "RSReasonSeg" / split,
    ]
    if root.name == split:
        candidates.append(root)
    for candidate in candidates:
        if (candidate / "images").is_dir() and (candidate / "QAs").is_dir():
            return candidate
    raise InputError(
        f"No EarthReason split {split!r} found under {root}. Expected {root}/{split}/ holding "
        f"{FOLDER_LAYOUT}; root may also be the folder above RSReasonSeg or the split folder."
    )


def read_earthreason(root: str | Path, split: str, all_questions: bool = False) -> list[Sample]:
    """Every item of one EarthReason split, sorted by stem, masks decoded lazily.

    ``all_questions=False`` (the authors' choice) gives one Sample per image holding every
    phrasing, of which trainers and evaluators use index 0; ``True`` gives one Sample per
    (question, answer) pair (see ``expand_question_pairs``).
    """
    samples = read_reason_dir(find_split_dir(root, split), labels_required=True)
    return expand_question_pairs(samples) if all_questions else samples


def read_reason_dir(directory: Path, labels_required: bool) -> list[Sample]:
    """Pair ``images/``, ``QAs/`` and (if present or required) ``labels/`` of one folder by stem.

    Without a ``labels/`` folder (allowed only when ``labels_required`` is False) every mask is
    None. Every stem must have a file in each folder; anything unpaired is an error.
    """
    images = _files_by_stem(directory / "images", IMAGE_SUFFIXES, "image")
    qas = _files_by_stem(directory / "QAs", QA_SUFFIXES, "QA")
    labels_dir = directory / "labels"
    paired = {"QAs": qas}
    labels: dict[str, Path] | None = None
    if labels_required or labels_dir.is_dir():
        labels = paired["labels"] = _files_by_stem(labels_dir, LABEL_SUFFIXES, "label")
    _require_same_stems(directory, images, paired)
    if not images:
        raise InputError(f"{directory / 'images'} holds no images. Expected {FOLDER_LAYOUT}.")

    samples = []
    for stem in sorted(images):
        questions, answers, category = read_qa_file(qas[stem])
        mask_loader = (
            partial(load_label_mask, labels[stem], images[stem], "nonzero")
            if labels is not None
            else None
        )
        samples.append(
            Sample(
                stem=stem,
                image_path=images[stem],
                questions=questions,
                answers=answers,
                category=category or category_from_stem(stem),
                mask_loader=mask_loader,
            )
        )
    return samples


def read_qa_file(path: Path) -> tuple[list[str], list[str], str | None]:
    """(questions, answers, category) from one QA json; ``answer`` may be missing (= [])."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path} is not valid UTF-8 JSON: {error}") from error
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a JSON object with 'questions' and 'answer'.")
    questions = _string_list(data.get("questions"), path, "questions")
    if not questions:
        raise InputError(
            f"{path} has no question: 'questions' must be a non-empty list of strings."
        )
    answers = _string_list(data.get("answer", []), path, "answer")
    category = data.get("category")
    return questions, answers, category if isinstance(category, str) and category else None


def _string_list(value: object, path: Path, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InputError(f"{path}: {key!r} must be a list of strings, got {value!r}.")
    return list(value)


def _files_by_stem(folder: Path, suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"Missing folder {folder}. Expected {FOLDER_LAYOUT}.")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in suffixes or not path.is_file():
            continue
        if path.stem in files:
            raise InputError(
                f"Two {what} files share the stem {path.stem!r}: {files[path.stem].name} and "
                f"{path.name} in {folder}. Keep one."
            )
        files[path.stem] = path
    return files


def _require_same_stems(
    directory: Path, images: dict[str, Path], others: dict[str, dict[str, Path]]
) -> None:
    problems = []
    for folder, files in others.items():
        for missing_in, stems in (
            (folder, images.keys() - files),
            ("images", files.keys() - images),
        ):
            if stems:
                shown = ", ".join(sorted(stems)[:5]) + (" ..." if len(stems) > 5 else "")
                problems.append(f"{len(stems)} stem(s) have no file in {missing_in}/: {shown}")
    if problems:
        raise InputError(
            f"Unpaired files in {directory}: " + "; ".join(problems) + ". Every image needs a "
            "label and a QA file with the same stem."
        )
