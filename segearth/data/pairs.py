"""Turning one multi-phrasing Sample into one Sample per (question, answer) pair."""

from __future__ import annotations

from collections.abc import Iterable

from .types import Sample


def expand_question_pairs(samples: Iterable[Sample]) -> list[Sample]:
    """One Sample per question, each with a single question and (if any) a single answer.

    Question ``k`` gets answer ``k mod len(answers)``. Why cycling rather than every
    combination: an item's answers are rephrasings of one answer, so any of them fits any
    question, and cycling uses each of them without multiplying the item count by
    ``len(questions) * len(answers)``. Empty targets keep an empty answer list. Masks stay lazy
    and stems are kept (they name the image), so expanded samples share stems.
    """
    expanded = []
    for sample in samples:
        answers = sample.answers
        for index, question in enumerate(sample.questions):
            paired = [answers[index % len(answers)]] if answers else []
            expanded.append(sample.with_text([question], paired))
    return expanded
