"""Per-token decoding of the released-size LLM alone, per precision: what an answer costs after
the mask, and the measurement behind `int8` on a CPU and `auto`'s answer path.

Phi-1.5 (24 layers) with random weights, as a predictor places it: fp32 with oneDNN's linears
(`segearth.cpu_linear`), bf16, or int8 (`segearth.runtime.quantize_llm_cpu`: PyTorch's
dynamic int8 linears). A 150-token prompt is read (prefill), then 32 tokens are decoded greedily
one at a time on its cache; the second of two repetitions is reported. Each precision runs in a
fresh process.

    python benchmarks/decode_speed.py [--precisions fp32 bf16 int8]
"""
from __future__ import annotations

import argparse
import multiprocessing
import time

import torch
from transformers import DynamicCache

from segearth import cpu_linear
from segearth.config import SegEarthConfig
from segearth.model.language import build_llm
from segearth.runtime import quantize_llm_cpu

PROMPT_TOKENS, ANSWER_TOKENS = 150, 32


def measure(precision: str) -> tuple[float, float]:
    """(prefill seconds, decode seconds per token) for the LLM in `precision`."""
    torch.manual_seed(0)
    llm = build_llm(SegEarthConfig.released().llm).eval()
    cpu_linear.route_linears(llm)
    if precision == "bf16":
        llm.to(torch.bfloat16)
    elif precision == "int8":
        quantize_llm_cpu(llm)
    dtype = llm.get_input_embeddings().weight.dtype
    with torch.inference_mode():
        for _ in range(2):  # the first pays one-time kernel set-up
            cache = DynamicCache(config=llm.config)
            embeds = 0.02 * torch.randn(1, PROMPT_TOKENS, llm.config.hidden_size, dtype=dtype)
            start = time.perf_counter()
            token = llm(inputs_embeds=embeds, cache=cache, use_cache=True).logits[:, -1:].argmax(-1)
            prefill = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(ANSWER_TOKENS):
                token = llm(input_ids=token, cache=cache, use_cache=True).logits[:, -1:].argmax(-1)
            decode = (time.perf_counter() - start) / ANSWER_TOKENS
    return prefill, decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    results = {}
    for precision in args.precisions:
        with context.Pool(1) as pool:
            results[precision] = pool.apply(measure, (precision,))
        print(f"{precision:<6} prefill {PROMPT_TOKENS} tokens {results[precision][0]:6.2f} s, "
              f"decode {1000 * results[precision][1]:6.0f} ms/token", flush=True)
    if "fp32" in results:
        for precision, (_, decode) in results.items():
            print(f"{precision}: decode {results['fp32'][1] / decode:.2f}x as fast as fp32")


if __name__ == "__main__":
    main()
