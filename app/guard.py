"""What a visitor may ask of a shared public server, checked on the server.

The page's widgets already restrict most choices, but anyone can call the API directly with any
value, so every check here runs in the handlers: which checkpoints may be loaded (and how big a
custom one may be), how long a question and how large an image may be, and how a failed model
load is reported. Messages never name a server path: checkpoints are named by their picker label,
and `without_paths` strips paths from every message the page shows.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import torch

from segearth.errors import CheckpointError, InputError, SegEarthError
from segearth.predictor import EMPTY_QUESTION

from .config import AppConfig, Limits

log = logging.getLogger("segearth.app")

GB = 1024 ** 3


def question_text(question: str | None, limits: Limits) -> str:
    """The stripped question, or a message when it is empty or over the length limit."""
    question = (question or "").strip()
    if not question:
        raise InputError(EMPTY_QUESTION)
    if len(question) > limits.max_question_chars:
        raise InputError(f"The question has {len(question):,} characters; this server takes at "
                         f"most {limits.max_question_chars:,}. Ask it in fewer words.")
    return question


def check_image_size(width: int, height: int, georeferenced: bool, name: str,
                     limits: Limits) -> None:
    """Refuse an upload too large to read on a shared server, before its pixels are read."""
    if georeferenced:
        side = limits.max_geotiff_side
        if max(width, height) > side:
            raise InputError(f"{name} is {width:,} x {height:,} pixels; this server reads "
                             f"GeoTIFFs up to {side:,} pixels a side. Crop it or make an "
                             f"overview (e.g. gdal_translate -outsize), or run the tiled mode "
                             f"locally (segearth predict --tiled).")
        return
    megapixels = width * height / 1e6
    if megapixels > limits.max_image_megapixels:
        raise InputError(f"{name} has {megapixels:,.1f} megapixels; this server takes images up "
                         f"to {limits.max_image_megapixels:,} megapixels. Downscale or crop it.")


def allowed_checkpoint(value: str | None, config: AppConfig) -> str:
    """The hub id or folder to load for `value`, if a visitor may use it: one of the configured
    checkpoints (by label), or, where the operator allows custom ones, an existing folder or a
    valid hub id not larger than the limit."""
    value = (value or "").strip()
    if not value:
        raise InputError("Pick a checkpoint from the list under Model.")
    configured = config.configured(value)
    if configured is not None:
        return configured
    if not config.allow_custom_checkpoints:
        offered = ", ".join(config.checkpoints)
        raise InputError(f"That checkpoint is not offered on this server. Pick one of: "
                         f"{offered}.")
    folder = Path(value).expanduser()
    size = _folder_size(folder) if folder.is_dir() else _hub_size(value)
    if size is not None and size > config.limits.max_checkpoint_gb * GB:
        raise InputError(f"{value} holds {size / GB:,.1f} GB; this server loads checkpoints up "
                         f"to {config.limits.max_checkpoint_gb} GB "
                         f"(SEGEARTH_MAX_CHECKPOINT_GB).")
    return value


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _hub_size(repo_id: str) -> int | None:
    """Bytes of the hub repository's files, from its file listing (nothing is downloaded);
    None when the hub is off (HF_HUB_OFFLINE: only the local cache is used, nothing is
    fetched). A name that is no repository id, or a repository that cannot be listed, is
    refused."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise InputError(f"{repo_id!r} is neither a checkpoint folder on this server nor a hub "
                         f"repository id (namespace/name).") from None
    if constants.HF_HUB_OFFLINE:
        return None
    try:
        info = HfApi().model_info(repo_id, files_metadata=True, timeout=10)
    except (RepositoryNotFoundError, GatedRepoError):
        raise InputError(f"{repo_id} is not a public model repository on the hub.") from None
    except Exception as err:  # noqa: BLE001 - any failure to list means: do not download
        log.warning("listing %s on the hub failed: %r", repo_id, err)
        raise InputError(f"The size of {repo_id} could not be checked on the hub "
                         f"({type(err).__name__}), so it is not downloaded. Try again "
                         f"later.") from None
    return sum(sibling.size or 0 for sibling in info.siblings or [])


#: An absolute file-system path in a message (not the path part of a URL: that follows a word
#: character, a colon or a slash).
_PATH = re.compile(r"(?<![\w:/.{}])/[^\s'\"(),:;]+")


def without_paths(text: str) -> str:
    """`text` with every absolute path replaced by its last component: the visitor learns which
    file, never where the server keeps it."""
    return _PATH.sub(lambda match: PurePosixPath(match.group()).name or "/", text)


@contextmanager
def loading(checkpoint: str, precision: str, config: AppConfig) -> Iterator[None]:
    """Turn a failed model load into a message for this visitor: out of memory, or files that
    are not a checkpoint at all (segearth's own CheckpointErrors already say what to do). The
    traceback goes to the server log."""
    name = config.name_of(checkpoint)
    try:
        yield
    except (MemoryError, torch.OutOfMemoryError):
        log.exception("out of memory loading %s (%s)", checkpoint, precision)
        raise CheckpointError(f"The server ran out of memory loading {name} ({precision}). Try "
                              f"again later, or pick the int8 or int4 precision.") from None
    except SegEarthError:
        raise
    except Exception as err:  # noqa: BLE001 - a library's error for files it cannot read
        log.exception("loading %s (%s) failed", checkpoint, precision)
        raise CheckpointError(f"{name} could not be loaded: its files are damaged or "
                              f"incomplete ({type(err).__name__}). Pick another checkpoint; "
                              f"the details are in the server log.") from None
