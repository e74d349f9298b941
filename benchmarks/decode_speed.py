"""Per-token decoding of the released-size LLM alone, per precision, eager and compiled: what an
answer costs after the mask, and the measurement behind `int8` on a CPU, `auto`'s answer path and
`segearth.model.runtime.COMPILED_DECODING_PAYS`.

Phi-1.5 (24 layers) with random weights, as a predictor places it: fp32 with oneDNN's linears
(`segearth.cpu_linear`), bf16, or int8 (`segearth.runtime.quantize_llm_cpu`: PyTorch's
dynamic int8 linears). A 150-token prompt is read (prefill), then `--tokens` tokens are decoded
greedily one at a time on its cache: eagerly (a `DynamicCache`, as `generate` does), then with
the compiled step (`generation.CompiledDecoder`: a static cache, `torch.compile`; not for int8,
whose quantised linears are not compiled). The modes alternate, one untimed run each (one-time
kernel set-up; the compiled mode's first run is its compilation, printed), then `ROUNDS` timed
runs each, the fastest reported: eager and compiled measured in the same process and the same
minutes, so their ratio holds on a busy machine. Each precision runs in a fresh process.

    python benchmarks/decode_speed.py [--precisions fp32 bf16 int8] [--tokens 32]
"""
from __future__ import annotations

import argparse
import multiprocessing
import time

import torch
from transformers import DynamicCache

from segearth import cpu_linear
from segearth.config import SegEarthConfig
from segearth.model.generation import CompiledDecoder
from segearth.model.language import build_llm
from segearth.runtime import quantize_llm_cpu

PROMPT_TOKENS = 150
#: Timed runs per mode after the first; the fastest is reported.
ROUNDS = 3


def measure(precision: str, tokens: int, small: bool = False) -> dict:
    """Prefill seconds, eager and compiled decode seconds per token, the compile's seconds and
    whether both modes decoded the same tokens, for the LLM in `precision` (tiny with `small`)."""
    torch.manual_seed(0)
    llm = build_llm((SegEarthConfig.tiny() if small else SegEarthConfig.released()).llm).eval()
    cpu_linear.route_linears(llm)
    if precision == "bf16":
        llm.to(torch.bfloat16)
    elif precision == "int8":
        quantize_llm_cpu(llm)
    dtype = llm.get_input_embeddings().weight.dtype
    embeds = 0.02 * torch.randn(1, PROMPT_TOKENS, llm.config.hidden_size, dtype=dtype)
    row: dict = {}

    def prefill() -> tuple[DynamicCache, torch.Tensor]:
        cache = DynamicCache(config=llm.config)
        start = time.perf_counter()
        token = llm(inputs_embeds=embeds, cache=cache, use_cache=True).logits[:, -1:].argmax(-1)
        row["prefill s"] = time.perf_counter() - start
        return cache, token

    def eager() -> list[int]:
        cache, token = prefill()
        out = []
        for _ in range(tokens):
            token = llm(input_ids=token, cache=cache, use_cache=True).logits[:, -1:].argmax(-1)
            out.append(int(token))
        return out

    decoder = CompiledDecoder(llm)

    def compiled() -> list[int]:
        cache, token = prefill()
        keys, values, position = decoder.static_cache(cache, decoder.cache_size(PROMPT_TOKENS, tokens))
        out = []
        for _ in range(tokens):
            token = decoder.run(token, keys, values, position).argmax(-1, keepdim=True)
            position += 1
            out.append(int(token))
        return out

    modes = {"eager": eager} if precision == "int8" else {"eager": eager, "compiled": compiled}
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    with torch.inference_mode():
        for repetition in range(1 + ROUNDS):  # the modes alternate: a busy machine slows both
            for mode, decode in modes.items():
                start = time.perf_counter()
                row[f"{mode} tokens"] = decode()
                seconds[mode].append(time.perf_counter() - start - row["prefill s"])
    for mode, runs in seconds.items():
        row[f"{mode} ms/token"] = 1000 * min(runs[1:]) / tokens
    if "compiled" in modes:
        row["first compiled run s"] = seconds["compiled"][0]  # the compilation, and the tokens
    eager_tokens, compiled_tokens = row.pop("eager tokens"), row.pop("compiled tokens", None)
    row["same tokens"] = None if compiled_tokens is None else eager_tokens == compiled_tokens
    return row


def in_fresh_process(precision: str, tokens: int, small: bool = False) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (precision, tokens, small))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--tokens", type=int, default=32, help="tokens decoded per run")
    args = parser.parse_args()
    results = {}
    for precision in args.precisions:
        row = results[precision] = in_fresh_process(precision, args.tokens)
        line = (f"{precision:<6} prefill {PROMPT_TOKENS} tokens {row['prefill s']:6.2f} s, "
                f"decode eager {row['eager ms/token']:6.0f} ms/token")
        if "compiled ms/token" in row:
            line += (f", compiled {row['compiled ms/token']:6.0f} ms/token "
                     f"({row['eager ms/token'] / row['compiled ms/token']:.2f}x; first compiled run "
                     f"{row['first compiled run s']:.0f} s; same tokens: {row['same tokens']})")
        print(line, flush=True)
    if "fp32" in results:
        for precision, row in results.items():
            print(f"{precision}: eager decode {results['fp32']['eager ms/token'] / row['eager ms/token']:.2f}x "
                  f"as fast as fp32's")


if __name__ == "__main__":
    main()
