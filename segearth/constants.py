"""Every fixed fact of SegEarth-R1 lives here: image normalisation, prompt templates,
placeholders, special tokens and the released checkpoints.

The values are those the released weights were trained with (see the authors' code); changing
any of them breaks compatibility with those checkpoints.
"""
from __future__ import annotations

# --- images -----------------------------------------------------------------------------------
#: The side of the square canvas the released checkpoints expect. The connector's LayerNorm
#: shapes tie a checkpoint to its canvas size (1024 -> res5 32x32 -> 8x8 tokens at d=2).
IMAGE_SIZE = 1024
#: ImageNet statistics in 0..255, applied *after* the zero padding (so padding is negative).
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
#: Largest image (in pixels) we decode; above this PIL's decompression-bomb guard trips and we
#: ask the user to use the tiled GeoTIFF path instead. 30k x 30k RGB is ~2.7 GB in memory.
MAX_IMAGE_PIXELS = 30_000 * 30_000

# --- text -------------------------------------------------------------------------------------
IMAGE_PLACEHOLDER = "<image>"
SEG_PLACEHOLDER = "<seg>"
REFER_PLACEHOLDER = "<refer>"
ANSWER_PLACEHOLDER = "<answer>"
PLACEHOLDERS = (IMAGE_PLACEHOLDER, SEG_PLACEHOLDER, REFER_PLACEHOLDER, ANSWER_PLACEHOLDER)

SEG_TOKEN = "[SEG]"
PAD_TOKEN = "[PAD]"

SYSTEM_PROMPT = (
    "You are a helpful language and vision assistant. You are able to understand the visual "
    "content that the user provides, and assist the user with a variety of tasks using natural "
    "language."
)

_USER_TURN = (
    "[INST] <<SYS>>\n" + SYSTEM_PROMPT + "\n<</SYS>>\n\n"
    "This is an image <image>, Please doing {task} according to the following instruction:\n"
    "<refer> [/INST]"
)

#: Prompt templates by task. Each holds the whole conversation; the text after `<refer>` is
#: what the model reads before it answers. `{eos}` is the tokenizer's end-of-text token.
PROMPT_TEMPLATES = {
    # EarthReason (reasoning, trained with an answer loss).
    "reasoning": _USER_TURN.format(task="Reasoning Segmentation")
    + " Sure, It is <seg>. \n<answer>. {eos}",
    # RefSegRS evaluation and all referring training.
    "referring": _USER_TURN.format(task="Referring Segmentation") + "\nSure. It is <seg>. ",
    # RRSIS-D evaluation.
    "referring_short": _USER_TURN.format(task="Referring Segmentation") + "\nSure.",
}
TASKS = tuple(PROMPT_TEMPLATES)

#: What reasoning checkpoints were taught to say when the target is absent.
EMPTY_TARGET_ANSWER = "There is no target object in the image."

# --- checkpoints ------------------------------------------------------------------------------
RELEASED_CHECKPOINTS = {
    "earthreason": "earth-insights/SegEarth-R1-EarthReason",
    "rrsisd": "earth-insights/SegEarth-R1-RRSIS-D",
}
#: model_type written by the authors' code (transformers 4.36, LLaVA-Phi lineage).
RELEASED_MODEL_TYPE = "llava_phi"
#: model_type we write with `save_pretrained`.
MODEL_TYPE = "segearth_r1"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
