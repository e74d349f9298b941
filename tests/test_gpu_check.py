"""`benchmarks/gpu_check.py --dry-run`: every step of the GPU check, on the CPU with the tiny
model, so that the script cannot rot before a GPU runs it."""
from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.parity_fixture import REPO, SHARED


def test_the_gpu_check_runs_end_to_end_on_a_cpu():
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--shared", str(SHARED)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    number = r"([\d.]+)"
    for precision in ("fp32", "bf16"):  # one table row each, every figure a number, the compiled step's too
        row = re.search(rf"^\| {precision} \| {number} s \| {number} s \| {number} s \| {number} \| {number} "
                        rf"\| {number} s \| {number} \|$", out, re.M)
        assert row and all(float(x) > 0 for x in row.groups()), out
    results = json.loads(next(line for line in out.splitlines() if line.startswith('{"speed"')))
    fp32 = results["speed"]["fp32"]
    assert fp32["same answer"] and fp32["compiled"]["text"]  # the compiled path, end to end: the eager answer
    assert fp32["compiled"]["first words s"] < fp32["compiled"]["answer s"]
    assert min(results["agreement"]["synthetic, bf16 vs fp32"]) >= 0.99
    assert re.fullmatch(r"\d+ skipped, \d+ deselected in .*", results["tests"])  # cuda tests skip cleanly
    assert "identical to the single-client run (mask pixel for pixel and answer): 2/2" in out
    assert results["train"]["steps"] == 2 and results["train"]["s/step"] > 0
    assert "gpu_check: all steps passed" in out


def test_a_failing_step_is_named_and_fails_the_run():
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--steps", "agreement",
                           "--shared", str(REPO / "no-such-folder")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1
    assert "gpu_check FAILED steps: agreement" in done.stderr
