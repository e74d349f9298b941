"""`segearth` on the command line: predict, eval, redundancy, convert. Thin over the package's API;
every `SegEarthError` becomes a one-line message and exit code 2, never a traceback."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import constants
from .errors import InputError, SegEarthError

DEFAULT_CHECKPOINT = constants.RELEASED_CHECKPOINTS["earthreason"]
GEO_SUFFIXES = (".tif", ".tiff")


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help=f"checkpoint folder or Hugging Face hub id (default {DEFAULT_CHECKPOINT})")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16, fp16, int8 or int4")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: a GPU if there is one)")


def _add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", type=Path,
                        help="an image (PNG, JPEG, TIFF) or a GeoTIFF; omit with --bbox")
    parser.add_argument("--question", "-q", required=True, help="what to find, in plain words")
    _add_model_arguments(parser)
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability threshold; 0.5 is the authors' logit > 0")
    parser.add_argument("--out", type=Path, default=Path("segearth-output"), help="output folder")
    parser.add_argument("--no-answer", action="store_true", help="skip generating the text answer")
    geo = parser.add_argument_group("geospatial")
    geo.add_argument("--bbox", type=float, nargs=4, metavar=("WEST", "SOUTH", "EAST", "NORTH"),
                     help="fetch map imagery for this lon/lat box instead of reading IMAGE")
    geo.add_argument("--tile-url", default=None,
                     help="XYZ tile URL template for --bbox (default: $SEGEARTH_TILE_URL or Esri World Imagery)")
    geo.add_argument("--bands", default=None, help="GeoTIFF bands to use as RGB, e.g. 4,3,2 (1-based)")
    geo.add_argument("--tiled", action="store_true",
                     help="large rasters: overlapping windows at native resolution instead of one resize")
    geo.add_argument("--max-tiles", type=int, default=64, help="cap on map tiles fetched for --bbox")


def run_predict(args: argparse.Namespace) -> int:
    from .geo import TileSource, predict_geo
    from .outputs import write_prediction
    from .predictor import Predictor
    from .processing import load_image

    if (args.image is None) == (args.bbox is None):
        raise InputError("Give either an IMAGE or --bbox WEST SOUTH EAST NORTH (not both).")
    bands = _parse_bands(args.bands)
    predictor = Predictor.from_pretrained(args.checkpoint, precision=args.precision, device=args.device)
    is_geo = args.bbox is not None or args.image.suffix.lower() in GEO_SUFFIXES
    if is_geo:
        tile_source = TileSource(url=args.tile_url, attribution="user tile server") if args.tile_url else None
        source = tuple(args.bbox) if args.bbox is not None else args.image
        written = predict_geo(predictor, source, args.question, args.out, tiled=args.tiled,
                              tile_source=tile_source, checkpoint_name=args.checkpoint,
                              threshold=args.threshold, bands=bands, max_tiles=args.max_tiles)
    else:
        image = load_image(args.image)
        predictor.set_image(image)
        prediction = predictor.predict(args.question, threshold=args.threshold, answer=not args.no_answer)
        written = write_prediction(prediction, image, args.question, args.out, args.image.stem)
        _print_result(prediction)
    for kind, path in written.items():
        print(f"{kind:>16}: {path}")
    return 0


def _parse_bands(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise InputError(f"--bands takes comma-separated band numbers such as 4,3,2, not {text!r}.") from None


def _print_result(prediction) -> None:
    if prediction.found:
        print(f"Target found: {100 * prediction.mask.mean():.2f} % of the image.")
    else:
        print("No target in this image.")
    if prediction.answer is not None:
        print(f"Answer: {prediction.answer}")
    elif not prediction.provenance.get("answers", True):
        print("No answer: this checkpoint was trained without an answer loss (masks only).")
    print("Timings (s): " + json.dumps({k: round(v, 3) for k, v in prediction.timings.items()}))


def _add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a released checkpoint (hub id or folder) or one of ours")
    parser.add_argument("out", type=Path, help="folder to write our layout into")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="bf16",
                        help="precision of the saved weights (default bf16, as released)")


def run_convert(args: argparse.Namespace) -> int:
    """Convert once instead of on every load: our layout, current tensor names, one file."""
    import torch

    from .checkpoints import load, save

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    model, tokenizer, _ = load(args.checkpoint, dtype)
    print(f"Wrote {save(model, args.out, tokenizer)} ({args.dtype})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .analysis.redundancy import add_redundancy_arguments, run_redundancy
    from .evaluation import add_eval_arguments, run_eval

    parser = argparse.ArgumentParser(prog="segearth", description="SegEarth-R1 geospatial pixel reasoning.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add, run in (
        ("predict", "segment what a question asks for in an image, GeoTIFF or map area", _add_predict_arguments,
         run_predict),
        ("eval", "score a checkpoint on a dataset (gIoU, cIoU, P@X) with an HTML report", add_eval_arguments,
         run_eval),
        ("redundancy", "the paper's entropy and self-similarity redundancy of image folders",
         add_redundancy_arguments, run_redundancy),
        ("convert", "rewrite a released checkpoint in our layout (no conversion at load time)",
         _add_convert_arguments, run_convert),
    ):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except SegEarthError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
