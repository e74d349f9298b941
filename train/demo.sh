#!/usr/bin/env bash
# The bundled demo model (assets/demo-checkpoint) from nothing, in one command, then issue 28's
# figures for both stages (docs/training.md, "The bundled demo model"):
#   stage 1 (demo.json): trained from scratch on synthetic scenes;
#   stage 2 (demo-negatives.json): fine-tuned on absent targets, scenes of varied size and scenes
#   drawn over one real CC0 photograph, then its operating point (threshold, noise floor and
#   confidence floor) calibrated on its kind of items and photograph negatives; this is the bundled
#   checkpoint (cp .cache/demo-negatives-run/final/* assets/demo-checkpoint/);
#   train/evaluate_demo.py: the figures, on scenes and photographs no stage trained on.
# Usage: bash train/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python -m train --config train/configs/demo.json --resume latest
python -m train --config train/configs/demo-negatives.json --resume latest
python train/calibrate.py .cache/demo-negatives-run/final --config train/configs/demo-negatives.json \
  --scores on --photos 0.98 --present 0.7 --write
python train/evaluate_demo.py .cache/demo-run/final
python train/evaluate_demo.py .cache/demo-negatives-run/final
