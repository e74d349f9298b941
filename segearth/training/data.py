"""Training batches: preprocessed canvases, canvas-size target masks and the prompt ids.

Training is counted in optimiser steps ("iterations", as the paper reports), not epochs, so the
batches come from `StepBatchSampler`, an endless stream of reshuffled epochs that any process
can start at any position: resuming at step k continues with exactly the batches an
uninterrupted run would have seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .. import constants
from ..data.types import Sample
from ..errors import InputError
from ..model import PromptInputs
from ..image_processing import load_image, mask_to_canvas, preprocess_image
from ..tokenization import answer_ids, description_ids


@dataclass
class Batch:
    pixel_values: torch.Tensor  # (B, 3, S, S) normalised canvases
    targets: torch.Tensor  # (B, S, S) float {0, 1}, the ground truth on the same canvas
    prompts: list[PromptInputs]

    def to(self, device: torch.device, dtype: torch.dtype) -> "Batch":
        return Batch(self.pixel_values.to(device, dtype), self.targets.to(device), self.prompts)


class SegmentationDataset(torch.utils.data.Dataset):
    """Samples -> (canvas, target, prompt ids). The first question and answer of each item, as
    the authors trained; an empty target (no answer) is taught EMPTY_TARGET_ANSWER, or no answer
    at all without ``answer_empty_targets`` (its prompt then stops before the answer)."""

    def __init__(self, samples: Sequence[Sample], tokenizer, canvas: int, with_answer: bool,
                 answer_empty_targets: bool = True):
        missing = [s.stem for s in samples if not s.has_mask]
        if missing:
            raise InputError(f"{len(missing)} training item(s) have no mask (e.g. {missing[0]}); "
                             "training needs ground truth for every item.")
        self.samples = list(samples)
        self.tokenizer = tokenizer
        self.canvas = canvas
        self.with_answer = with_answer
        self.answer_empty_targets = answer_empty_targets

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, PromptInputs]:
        sample = self.samples[index]
        pixels, _ = preprocess_image(load_image(sample.image_path), self.canvas)
        target = torch.from_numpy(mask_to_canvas(sample.mask, self.canvas)).float()
        answer = None
        if self.with_answer and (sample.answer or self.answer_empty_targets):
            answer = answer_ids(self.tokenizer, sample.answer or constants.EMPTY_TARGET_ANSWER)
        return pixels[0], target, PromptInputs(description_ids(self.tokenizer, sample.question), answer)


def collate(items: list[tuple[torch.Tensor, torch.Tensor, PromptInputs]]) -> Batch:
    pixels, targets, prompts = zip(*items)
    return Batch(torch.stack(pixels), torch.stack(targets), list(prompts))


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Endless per-process batches. Epoch e visits ``randperm(n)`` seeded with ``seed + e``, cut
    into global batches of ``batch_size x num_processes`` (the incomplete tail is dropped);
    process r takes slice r of each. ``start`` counts global batches already consumed."""

    def __init__(self, size: int, batch_size: int, num_processes: int, rank: int, seed: int, start: int = 0):
        self.per_epoch = size // (batch_size * num_processes)
        if self.per_epoch == 0:
            raise InputError(f"The training split has {size} items, fewer than one global batch "
                             f"({batch_size} x {num_processes} processes).")
        self.size, self.batch_size, self.num_processes, self.rank = size, batch_size, num_processes, rank
        self.seed, self.start = seed, start

    def epoch_of(self, position: int) -> float:
        return position / self.per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch))
            for batch in range(offset, self.per_epoch):
                first = (batch * self.num_processes + self.rank) * self.batch_size
                yield order[first:first + self.batch_size].tolist()
            epoch, offset = epoch + 1, 0
