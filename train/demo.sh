#!/usr/bin/env bash
# The demo model's recipe from nothing, in one command, then issue 28's figures for both stages
# (docs/training.md, "The bundled demo model"):
#   stage 1 (demo.json): trained from scratch on synthetic scenes; the bundled assets/demo-checkpoint;
#   stage 2 (demo-negatives.json): fine-tuned on hard negatives and on scenes drawn over one real
#   CC0 photograph, its threshold and noise floor then calibrated on its kind of items (tried, not
#   bundled: docs/training.md says why);
#   train/evaluate_demo.py: the figures, on scenes and photographs no stage trained on.
# Usage: bash train/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python -m train --config train/configs/demo.json --resume latest
python -m train --config train/configs/demo-negatives.json --resume latest
python train/calibrate.py .cache/demo-negatives-run/final --config train/configs/demo-negatives.json --write
python train/evaluate_demo.py .cache/demo-run/final
python train/evaluate_demo.py .cache/demo-negatives-run/final
