"""Reading and writing checkpoints: the authors' released layout and our own.

A released checkpoint (`config.json` with model_type ``llava_phi``, safetensors, tokenizer) is
converted on the fly by `RELEASED_RENAMES`, a table of (pattern, replacement) pairs, plus two
tensor transforms: Phi's fused ``query_key_value`` is split into q/k/v as current transformers
expects, and the missing ``lm_head`` bias is zero. Tensors the released model never uses are
dropped by `RELEASED_UNUSED`. Our own layout is the model's state dict as is.
"""
from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import save_torch_state_dict

from . import constants
from .config import SegEarthConfig, from_released_config
from .errors import CheckpointError
from . import runtime
from .model import SegEarthR1
from .runtime import Placement

# (regex on the released key, replacement in our model). First match wins.
RELEASED_RENAMES: list[tuple[str, str]] = [
    (r"^model\.vision_tower\.", "encoder."),
    (r"^model\.mm_projector\.", "connector."),
    (r"^model\.(embed_tokens|layers|final_layernorm)\.", r"llm.model.\1."),
    (r"^lm_head\.", "llm.lm_head."),
    (r"^text_projector\.", "d_projector.text_projector."),
    (r"^origin_SEG_token_projector\.", "d_projector.origin_projector."),
    (r"^local_project\.", "d_projector.image_projector."),
    (r"^SEG_token_projector\.", "d_projector.query_projector."),
    (r"^d_layers\.", "d_projector.perceiver."),
    (r"^pixel_decoder\.", "pixel_decoder."),
    (r"^predictor\.", "mask_decoder."),
]
# Released tensors that the released inference path never reads (or that we recompute).
RELEASED_UNUSED = re.compile(
    r"^seg_query$|^predictor\.(query_feat|query_embed|SEG_query_embed|new_query_embed)\.|"
    r"^predictor\.(SEG_proj|CLASS_proj)\.|relative_position_index$"
)
_LLM_LAYER = re.compile(r"^llm\.model\.layers\.(\d+)\.")
_FUSED_QKV = re.compile(r"^(llm\.model\.layers\.\d+\.self_attn\.)query_key_value\.(weight|bias)$")

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


# --- locating ----------------------------------------------------------------------------------
def resolve(checkpoint: str | os.PathLike) -> Path:
    """A local folder, or a hub id fetched (and cached) by huggingface_hub."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; give the checkpoint folder that holds config.json.")
    name = str(checkpoint)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        raise CheckpointError(
            f"Checkpoint {name!r} is neither a local folder nor a Hugging Face hub id (owner/name)."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(
            name, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]))
    except RepositoryNotFoundError:
        raise CheckpointError(f"No model {name!r} on the Hugging Face hub (or it is private).") from None
    except LocalEntryNotFoundError:
        raise CheckpointError(
            f"Cannot download {name!r}: the hub is unreachable or HF_HUB_OFFLINE is set, and it is "
            "not in the local cache. Connect once, or pass a local checkpoint folder."
        ) from None
    except (HfHubHTTPError, OSError) as err:
        raise CheckpointError(f"Downloading {name!r} failed: {err}. Try again or use a local folder.") from None


# --- reading ---------------------------------------------------------------------------------
def read_config(folder: Path) -> tuple[SegEarthConfig, bool]:
    """(our config, whether the folder is in the authors' released layout)."""
    file = folder / constants.CONFIG_NAME
    if not file.is_file():
        raise CheckpointError(f"{folder} has no {constants.CONFIG_NAME}: it is not a checkpoint folder.")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{file} is not valid JSON ({err}).") from None
    model_type = data.get("model_type")
    try:
        if model_type == constants.RELEASED_MODEL_TYPE:
            config = from_released_config(data)
            if "rrsis" in folder.as_posix().lower():  # the referring release has no answer loss
                config.task, config.answers = "referring_short", False
            return config, True
        if model_type == constants.MODEL_TYPE:
            return SegEarthConfig.from_dict(data), False
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{file} describes a model we cannot build: {err}") from None
    raise CheckpointError(
        f"{file} has model_type {model_type!r}; expected {constants.MODEL_TYPE!r} or the released "
        f"{constants.RELEASED_MODEL_TYPE!r}."
    )


def cached_config(checkpoint: str | os.PathLike) -> SegEarthConfig | None:
    """The config of a local folder, or of a hub checkpoint already in the local cache, without
    downloading anything; None when there is none or it cannot be read. For what a UI shows
    before the model is loaded (the checkpoint's default threshold)."""
    path = Path(checkpoint).expanduser()
    if not path.is_dir():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(str(checkpoint), constants.CONFIG_NAME)
        except ValueError:  # not a valid hub id
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached).parent
    try:
        return read_config(path)[0]
    except CheckpointError:
        return None


def weight_files(folder: Path) -> list[Path]:
    """The checkpoint's weight files: safetensors (single or sharded), or a .bin."""
    index = folder / "model.safetensors.index.json"
    singles = sorted(folder.glob("*.safetensors"))
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    if index.is_file():
        return [folder / shard for shard in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    if len(singles) == 1:
        return singles
    if (folder / "pytorch_model.bin").is_file():
        return [folder / "pytorch_model.bin"]
    raise CheckpointError(f"{folder} has no weights: expected one of {', '.join(WEIGHT_FILES)}.")


#: safetensors' dtype names -> torch's
_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool}


def _tensors(path: Path) -> dict[str, tuple[torch.Tensor, Callable[[], torch.Tensor]]]:
    """Each tensor of a weight file -> (its shape and dtype as a meta tensor, a function reading
    it). A safetensors file is read one tensor at a time with plain reads (its header says
    where each lies), so only the tensor being loaded is in memory: the `safetensors` package
    maps the whole file, whose pages then count as resident until it is closed. A .bin is read
    with ``weights_only`` (never arbitrary pickles)."""
    if path.suffix == ".bin":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            if not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise TypeError("not every entry is a tensor")
        except Exception as err:  # noqa: BLE001 - any failure to read means an unsafe or damaged file
            raise CheckpointError(
                f"{path.name} is not a plain tensor file ({type(err).__name__}); we do not unpickle "
                "arbitrary objects. Convert it to safetensors."
            ) from None
        return {k: (v.to("meta"), lambda v=v: v) for k, v in state.items()}
    try:
        with path.open("rb") as f:
            length = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(length))
        header.pop("__metadata__", None)
        size = path.stat().st_size
        entries = {k: (_SAFETENSORS_DTYPES[v["dtype"]], tuple(v["shape"]), *v["data_offsets"]) for k, v in header.items()}
        if any(8 + length + end > size for *_, end in entries.values()):
            raise ValueError(f"{size} bytes, shorter than its header says")
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise CheckpointError(f"{path.name} is damaged or incomplete ({err}). Download it again.") from None

    def read(dtype: torch.dtype, shape: tuple[int, ...], start: int, end: int) -> torch.Tensor:
        data = bytearray(end - start)
        with path.open("rb") as f:
            f.seek(8 + length + start)
            f.readinto(data)
        return torch.frombuffer(data, dtype=dtype).reshape(shape) if data else torch.empty(shape, dtype=dtype)

    return {k: (torch.empty(shape, dtype=dtype, device="meta"), functools.partial(read, dtype, shape, start, end))
            for k, (dtype, shape, start, end) in entries.items()}


def convert_released(state: dict[str, torch.Tensor], num_heads: int) -> dict[str, torch.Tensor]:
    """The authors' tensor names and layout -> ours."""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if RELEASED_UNUSED.search(key):
            continue
        new = next((re.sub(p, r, key) for p, r in RELEASED_RENAMES if re.match(p, key)), None)
        if new is None:
            converted[key] = tensor  # reported as unexpected by `load_into`
            continue
        fused = _FUSED_QKV.match(new)
        if fused:
            # rows are interleaved per head: [head][q|k|v][head_dim]
            per_head = tensor.view(num_heads, 3, -1, *tensor.shape[1:])
            for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
                converted[f"{fused[1]}{name}.{fused[2]}"] = per_head[:, j].reshape(-1, *tensor.shape[1:])
        else:
            converted[new] = tensor
    return converted


def tied_duplicates(model: torch.nn.Module) -> set[str]:
    """Names that are a second name of an earlier tensor (tied embeddings): stored once."""
    seen: set[int] = set()
    duplicates = set()
    for key, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            duplicates.add(key)
        seen.add(id(tensor))
    return duplicates


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load or raise a `CheckpointError` naming every missing, unexpected and mis-shaped tensor."""
    state = check_fits(model, state, source)
    model.load_state_dict(state, strict=False)  # every key was checked; tied ones follow


def check_fits(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """`state` (real or meta tensors) with a zero lm_head bias added where the model has one and
    the checkpoint not (the released one); raises a `CheckpointError` naming every missing,
    unexpected and mis-shaped tensor."""
    tied = tied_duplicates(model)
    own = {k: v for k, v in model.state_dict().items() if k not in tied}
    if "llm.lm_head.bias" in own and "llm.lm_head.bias" not in state:
        bias = own["llm.lm_head.bias"]
        state = {**state, "llm.lm_head.bias": torch.zeros(bias.shape, dtype=bias.dtype)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                        for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if missing or unexpected or mis_shaped:
        lines = [f"{source} does not fit the model described by its config.json."]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items[:20])
                             + (" ..." if len(items) > 20 else ""))
        raise CheckpointError("\n".join(lines))
    return state


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # it reads config.json and warns that llava_phi is unknown to it
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as err:
        raise CheckpointError(f"{folder} has no usable tokenizer files ({err}).") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if constants.SEG_TOKEN not in tokenizer.get_vocab():
        raise CheckpointError(f"The tokenizer in {folder} lacks {constants.SEG_TOKEN}: not a SegEarth-R1 tokenizer.")
    return tokenizer


# --- writing ---------------------------------------------------------------------------------
def save(model: SegEarthR1, folder: str | os.PathLike, tokenizer=None, extra: dict[str, Any] | None = None) -> Path:
    """Our layout: config.json, model.safetensors and the tokenizer files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tied = tied_duplicates(model)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in tied}
    # huggingface_hub writes model.safetensors, or shards plus an index above 5 GB
    save_torch_state_dict(state, folder, metadata={"format": "pt"})
    config = json.loads(model.config.to_json())
    if extra:
        config.update(extra)
    (folder / constants.CONFIG_NAME).write_text(json.dumps(config, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return folder


def load(checkpoint: str | os.PathLike, dtype: torch.dtype = torch.float32, placement: Placement | None = None):
    """(model in eval mode, tokenizer, resolved folder) from a folder or hub id, either layout:
    the whole model in `dtype`, or each part as `placement` runs it (`runtime.part_dtypes`, the
    LLM's decoder layers quantised to int8 as each is read where the placement asks for it;
    `runtime.place` then has nothing left to change).

    Each tensor is read alone straight into the parameter it fills, in that parameter's dtype:
    the model is built without drawing random weights (its memory is untouched until a tensor
    lands in it) and no copy of the whole checkpoint in another dtype ever exists, so the
    released model in bf16 peaks at its bf16 size, not at the 6.4 GB of fp32 (docs/speed.md)."""
    from transformers.initialization import no_init_weights

    folder = resolve(checkpoint)
    config, released = read_config(folder)
    tokenizer = load_tokenizer(folder)
    tensors = {k: v for file in weight_files(folder) for k, v in _tensors(file).items()}
    with no_init_weights():  # which also skips transformers' tying of the LLM's embeddings
        model = SegEarthR1(config).eval()
    model.llm.tie_weights()
    if placement is None:
        model.to(dtype)
    else:
        runtime.cast(model, placement)
    convert = functools.partial(convert_released, num_heads=config.llm.num_heads) if released else dict
    stored = convert({k: meta for k, (meta, _) in tensors.items()})
    check_fits(model, stored, source=str(checkpoint))
    tied = tied_duplicates(model)
    own = {k: v for k, v in model.state_dict(keep_vars=True).items() if k not in tied}
    quantize = placement is not None and runtime.quantizes_on_cpu(placement)
    layers = model.llm.model.layers
    unread = [{k for k in own if k.startswith(f"llm.model.layers.{i}.")} for i in range(len(layers))]
    with torch.no_grad():
        if "llm.lm_head.bias" in own and "llm.lm_head.bias" not in stored:
            own.pop("llm.lm_head.bias").zero_()
        for key, (_, read) in tensors.items():
            for name, tensor in convert({key: read()}).items():
                own.pop(name).copy_(tensor)
                layer = _LLM_LAYER.match(name)
                if layer:
                    unread[int(layer[1])].discard(name)
                    if quantize and not unread[int(layer[1])]:  # its fp32 linears are freed now
                        runtime.quantize_layer_cpu(layers[int(layer[1])])
    return model, tokenizer, folder
