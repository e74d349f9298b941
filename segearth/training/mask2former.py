"""Initialising the vision side from Mask2Former's COCO-panoptic Swin-B checkpoint, as the
authors did: Swin encoder, pixel decoder and mask decoder.

The file (``model_final_54b88a.pkl``) is a detectron2 pickle: ``{"model": {name: numpy array}}``.
Unpickling can run arbitrary code, so `SafeUnpickler` reconstructs numpy arrays and plain
containers only. `MASK2FORMER_RENAMES` maps its names to ours; detectron2's conv-with-norm
layers (``adapter_1``, ``layer_1``) have no bias (the GroupNorm follows), so ours start at zero,
which computes the same function. The class head, the criterion's buffers and, unless the
model has learned queries (PSALM-style baseline), the queries are dropped.
"""
from __future__ import annotations

import codecs
import collections
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import load_into
from ..errors import CheckpointError

#: (regex on the detectron2 name, replacement in our model). First match wins.
MASK2FORMER_RENAMES: list[tuple[str, str]] = [
    (r"^backbone\.", "encoder."),
    (r"^sem_seg_head\.pixel_decoder\.(adapter_1|layer_1)\.weight$", r"pixel_decoder.\1.0.weight"),
    (r"^sem_seg_head\.pixel_decoder\.(adapter_1|layer_1)\.norm\.", r"pixel_decoder.\1.1."),
    (r"^sem_seg_head\.pixel_decoder\.", "pixel_decoder."),
    (r"^sem_seg_head\.predictor\.", "mask_decoder."),
]
#: Tensors of the checkpoint no SegEarth-R1 variant has (queries are dropped only if ours lack them).
MASK2FORMER_UNUSED = re.compile(
    r"^sem_seg_head\.predictor\.class_embed\.|^criterion\.|^pixel_(mean|std)$|relative_position_index$"
)
_OPTIONAL = re.compile(r"^mask_decoder\.(query_feat|query_embed)\.")
#: Our parts that the checkpoint initialises; every tensor of them must come from it.
VISION_PREFIXES = ("encoder.", "pixel_decoder.", "mask_decoder.")
_NO_BIAS_IN_DETECTRON2 = re.compile(r"^pixel_decoder\.(adapter_1|layer_1)\.0\.bias$")


class SafeUnpickler(pickle.Unpickler):
    """Only what a detectron2 weight file needs: numpy array reconstruction and containers."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): np._core.multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles store bytes
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"The Mask2Former file asks to load {module}.{name}, which a weight file never needs; "
                "refusing to unpickle it. Use the original model_final_54b88a.pkl."
            ) from None


def read_detectron2_weights(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as file:
            data = SafeUnpickler(file, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError) as err:
        raise CheckpointError(f"Cannot read {path} as a detectron2 weight file ({err}).") from None
    weights = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path} holds no weight dictionary.")
    return weights


def convert_mask2former(weights: dict[str, np.ndarray], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """detectron2 names and arrays -> our vision tensors. ``own`` is the model's state dict,
    used to drop the queries of models that have none and to fill detectron2's missing biases."""
    converted: dict[str, torch.Tensor] = {}
    for key, array in weights.items():
        if MASK2FORMER_UNUSED.search(key):
            continue
        new = next((re.sub(p, r, key) for p, r in MASK2FORMER_RENAMES if re.match(p, key)), key)
        if _OPTIONAL.match(new) and new not in own:
            continue
        converted[new] = torch.from_numpy(np.ascontiguousarray(array)).float()
    for key, tensor in own.items():
        if _NO_BIAS_IN_DETECTRON2.match(key) and key not in converted:
            converted[key] = torch.zeros_like(tensor)
    return converted


def load_mask2former(model: torch.nn.Module, source: str) -> None:
    """Load the encoder, pixel decoder and mask decoder from a local file or URL (downloaded once
    into torch's hub cache); raises a
    `CheckpointError` naming every missing, unexpected or mis-shaped tensor."""
    weights = read_detectron2_weights(_local_file(source))
    part = _Subset(model, VISION_PREFIXES)
    load_into(part, convert_mask2former(weights, part.state_dict()), source=source)


class _Subset(torch.nn.Module):
    """The model's vision parts under their full names, so `load_into` checks exactly them."""

    def __init__(self, model: torch.nn.Module, prefixes: tuple[str, ...]):
        super().__init__()
        for prefix in prefixes:
            name = prefix.rstrip(".")
            self.add_module(name, getattr(model, name))


def _local_file(source: str) -> Path:
    if re.match(r"^https?://", source):
        cache = Path(torch.hub.get_dir()) / "segearth" / Path(source).name
        if not cache.is_file():
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(source, str(cache))
        return cache
    path = Path(source).expanduser()
    if not path.is_file():
        raise CheckpointError(f"Mask2Former checkpoint {path} not found. Give the file or its URL "
                              "(train/configs/base.json names the one the authors used).")
    return path
