"""`segearth` (or `python -m segearth`) on the command line: predict, eval, redundancy, convert.

Every sub-command's arguments and its run function live here, thin over the package's API (so no
library module imports the command line); every `SegEarthError` becomes a one-line message and
exit code 2, never a traceback. Training keeps its own entry point in `train/`."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import constants
from .analysis import redundancy
from .errors import InputError, SegEarthError
from .regions import MIN_REGION_PX

DEFAULT_CHECKPOINT = constants.RELEASED_CHECKPOINTS["earthreason"]
GEO_SUFFIXES = (".tif", ".tiff")


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help=f"checkpoint folder or Hugging Face hub id (default {DEFAULT_CHECKPOINT})")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16, fp16, int8 or int4")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: a GPU if there is one)")


def _add_threshold_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, default=None,
                        help="probability threshold (default: the checkpoint's; 0.5, the authors' "
                             "logit > 0, for the released ones)")


def _add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", type=Path,
                        help="an image (PNG, JPEG, TIFF) or a GeoTIFF; omit with --bbox")
    parser.add_argument("--question", "-q", required=True, help="what to find, in plain words")
    _add_model_arguments(parser)
    _add_threshold_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("segearth-output"), help="output folder")
    parser.add_argument("--no-answer", action="store_true", help="skip generating the text answer")
    parser.add_argument("--min-region-px", type=int, default=MIN_REGION_PX,
                        help=f"drop regions smaller than this many pixels (default {MIN_REGION_PX})")
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
    """`segearth predict`: the files of `write_result` and one line per region as soon as the mask
    exists, then the answer streamed as it is decoded (the JSON record gets it at the end)."""
    from .geo import GeoImage, TileSource
    from .image_processing import load_image
    from .pipelines import predict_geo
    from .outputs import write_record, write_result
    from .predictor import Predictor, finish_answer

    if (args.image is None) == (args.bbox is None):
        raise InputError("Give either an IMAGE or --bbox WEST SOUTH EAST NORTH (not both).")
    if args.min_region_px < 1:
        raise InputError(f"--min-region-px is a number of pixels >= 1, not {args.min_region_px}.")
    bands = _parse_bands(args.bands)
    predictor = Predictor.from_pretrained(args.checkpoint, precision=args.precision, device=args.device)
    is_geo = args.bbox is not None or args.image.suffix.lower() in GEO_SUFFIXES
    if is_geo:
        tile_source = TileSource(url=args.tile_url, attribution="user tile server") if args.tile_url else None
        source = tuple(args.bbox) if args.bbox is not None else args.image
        written = predict_geo(predictor, source, args.question, args.out, tiled=args.tiled,
                              tile_source=tile_source, checkpoint_name=args.checkpoint,
                              threshold=args.threshold, bands=bands, max_tiles=args.max_tiles,
                              min_region_px=args.min_region_px)
        _print_files(written)
        _print_answer(json.loads(written["json"].read_text()))
        return 0
    image = GeoImage(load_image(args.image), source={"kind": "image", "path": str(args.image)})
    predictor.set_image(image)
    result = predictor.predict(args.question, threshold=args.threshold, answer=False,
                               min_region_px=args.min_region_px)
    written = write_result(result, args.out, args.image.stem)
    _print_files(written)  # the mask is on disk and on screen before any answer text
    if args.no_answer:
        _print_answer(result.record())
        return 0
    stream, shown = predictor.answer_stream(result), ""
    for piece in stream:
        if not shown:
            piece = piece.lstrip()
            if not piece:
                continue
            print("Answer: ", end="")
        shown += piece
        print(piece, end="", flush=True)
    if shown:
        print()
    write_record(finish_answer(result, stream), written["json"], written)
    _print_answer(result.record(), streamed=shown)
    return 0


def _print_files(written: dict[str, Path]) -> None:
    """The files written, then the run in words from its JSON record (so the screen and the file
    cannot disagree): found or not, one line per region."""
    for kind, path in written.items():
        print(f"{kind:>16}: {path}")
    record = json.loads(written["json"].read_text())
    if record["found"]:
        print(f"Target found: {100 * record['positive_fraction']:.2f} % of the image.")
    else:
        print(record["message"])
    for row in record["regions"]:
        col0, row0, col1, row1 = row["bbox_px"]
        size = (f"{row['area_m2']:,.1f} m² ({row['area_ha']:,.4f} ha), " if "area_m2" in row
                else "")
        print(f"region {row['rank']}: {size}{row['pixels']:,} px, score {row['score']:.3f}, "
              f"peak {row['peak']:.3f}, pixels x {col0}-{col1} y {row0}-{row1}")
    if record["dropped_regions"]:
        unsure = f" or scoring under {record['min_region_score']:g}" if record["min_region_score"] else ""
        print(f"({record['dropped_regions']} region(s) under {record['min_region_px']} px{unsure} dropped)")
    print(end="", flush=True)


def _print_answer(record: dict, streamed: str = "") -> None:
    """The answer (unless it was streamed as it is), or why there is none (once), and timings."""
    if record["answer"] is not None and record["answer"] != streamed.strip():
        print(f"Answer: {record['answer']}" if not streamed else
              f"Answer (a repeating loop cut): {record['answer']}")
    elif record["answer"] is None and record["answer_note"]:
        print(f"No answer: {record['answer_note']}")
    if record["timings_s"]:
        print("Timings (s): " + json.dumps(record["timings_s"]))


def _parse_bands(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise InputError(f"--bands takes comma-separated band numbers such as 4,3,2, not {text!r}.") from None


def _add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    from .data.registry import DATASET_NAMES

    parser.add_argument("--checkpoint", required=True, help="checkpoint folder or Hugging Face hub id")
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES)
    parser.add_argument("--root", "--data-root", dest="root", required=True, type=Path,
                        help="the dataset's folder")
    parser.add_argument("--split", default="val", help="train, val or test (ignored for folder)")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16, fp16, int8 or int4")
    parser.add_argument("--device", default=None, help="e.g. cuda:0 or cpu (ignored under accelerate launch)")
    _add_threshold_argument(parser)
    parser.add_argument("--all-questions", action="store_true",
                        help="score every question of an item, not only the first (the authors' choice)")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N items")
    parser.add_argument("--answers", action="store_true",
                        help="also generate the model's answers (slower; shown in the report)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default ./eval-<dataset>-<split>)")
    parser.add_argument("--gallery", type=int, default=6, help="worst and best cases shown in the report")
    parser.add_argument("--compare-to", type=Path, default=None,
                        help="the --out folder of an earlier run on the same data: adds metric deltas "
                             "and mask agreement")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_eval(args: argparse.Namespace) -> int:
    """`segearth eval`: score, print the table, write metrics.json, masks.npz and the report.

    Under ``accelerate launch`` (WORLD_SIZE > 1) the items are split over the processes and
    only the main process writes.
    """
    from .data.registry import load_dataset
    from .evaluation import (MASKS_FILE, RESULT_FILE, compare, evaluate, format_table, item_ids,
                             read_run, write_run)
    from .predictor import Predictor

    samples = load_dataset(args.dataset, args.root, args.split, all_questions=args.all_questions)
    samples = samples[: args.limit] if args.limit else samples
    if not any(s.has_mask for s in samples):
        raise InputError(f"No item under {args.root} has a ground-truth mask: nothing to score. "
                         "Add a labels/ folder (non-zero = target).")
    accelerator = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import Accelerator

        accelerator = Accelerator()
    device = str(accelerator.device) if accelerator is not None else args.device
    predictor = Predictor.from_pretrained(args.checkpoint, precision=args.precision, device=device)
    result = evaluate(predictor, samples, progress=not args.no_progress, keep_masks=True,
                      accelerator=accelerator, threshold=args.threshold, answers=args.answers)
    if accelerator is not None and not accelerator.is_main_process:
        return 0
    result.meta.update(checkpoint=str(args.checkpoint), dataset=args.dataset, root=str(args.root),
                       split=args.split, precision_requested=args.precision)
    out = args.out or Path(f"eval-{args.dataset}-{args.split}")
    write_run(result, out)
    print(format_table(result.summary()))
    print(f"\nWrote {out / RESULT_FILE} and {out / MASKS_FILE}")
    by_id = dict(zip(item_ids(samples), samples))
    if not args.no_report:
        from .report import write_report

        print(f"Report: {write_report(result, by_id, out / 'report', gallery=args.gallery)}")
    if args.compare_to is not None:
        comparison = compare(read_run(args.compare_to), result)
        (out / "compare.json").write_text(json.dumps(comparison.to_json(), indent=1))
        print(f"\nCompared with {args.compare_to}: mean mask IoU {comparison.mean_mask_iou:.4f}")
        print(format_table({f: {**row, "count": len(comparison.items)} for f, row in comparison.deltas().items()}))
        if not args.no_report:
            from .report import write_compare_report

            print(f"Comparison report: {write_compare_report(comparison, by_id, out / 'compare', gallery=args.gallery)}")
    return 0


def _add_redundancy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="+", type=Path,
                        help="one or more folders of images; each becomes one bar group")
    parser.add_argument("--patch-size", type=int, default=redundancy.DEFAULT_PATCH,
                        help=f"SSIM patch side in pixels (default {redundancy.DEFAULT_PATCH})")
    parser.add_argument("--max-side", type=int, default=redundancy.DEFAULT_MAX_SIDE,
                        help="downscale larger images to this long side first; 0 keeps them "
                             f"(default {redundancy.DEFAULT_MAX_SIDE})")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per folder")
    parser.add_argument("--out", type=Path, default=Path("redundancy"),
                        help="folder for redundancy.json and redundancy.png (default ./redundancy)")


def run_redundancy(args: argparse.Namespace) -> int:
    """`segearth redundancy`: the paper's Fig. 3 values per folder, as JSON and a chart."""
    from .analysis.redundancy import C1, C2, LEVELS, analyse_folder, format_table, plot_redundancy

    summaries = [analyse_folder(folder, args.patch_size, args.max_side or None, args.limit)
                 for folder in args.folders]
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"patch_size": args.patch_size, "max_side": args.max_side or None, "C1": C1, "C2": C2,
                "levels": LEVELS, "grayscale": "ITU-R 601-2 luma (PIL 'L')"}
    (args.out / "redundancy.json").write_text(json.dumps({"settings": settings, "folders": summaries},
                                                         indent=1))
    chart = plot_redundancy(summaries, args.out / "redundancy.png")
    print(format_table(summaries))
    print(f"\nWrote {args.out / 'redundancy.json'} and {chart}")
    return 0


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
    parser = argparse.ArgumentParser(prog="segearth", description="SegEarth-R1 geospatial pixel reasoning.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add, run in (
        ("predict", "segment what a question asks for in an image, GeoTIFF or map area", _add_predict_arguments,
         run_predict),
        ("eval", "score a checkpoint on a dataset (gIoU, cIoU, P@X) with an HTML report", _add_eval_arguments,
         run_eval),
        ("redundancy", "the paper's entropy and self-similarity redundancy of image folders",
         _add_redundancy_arguments, run_redundancy),
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
