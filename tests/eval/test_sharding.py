"""Evaluation split over two processes (torchrun, CPU, gloo) gathers the same result as one."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from segearth.evaluation import evaluate

from ..conftest import REPO
from .fakes import FakePredictor, make_samples


# torch.distributed.run from this interpreter: a virtual environment's torchrun need not be on PATH
@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_processes_share_the_items_and_gather_them_in_order(tmp_path):
    data = tmp_path / "data"
    single = evaluate(FakePredictor(), make_samples(data), progress=False)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "-m", "tests.eval.shard_worker", str(data), str(tmp_path)],
                   cwd=REPO, env=env, check=True, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    # contiguous shares: both questions about the square image stay on rank 0, encoded once
    assert ranks[0]["encoded"] == ["square.png"] and ranks[1]["encoded"] == ["wide.png", "tall.png"]
    for rank in ranks:
        assert rank["processes"] == 2
        assert rank["ids"] == [i.id for i in single.items]
        assert rank["ious"] == [i.iou_canvas for i in single.items]
        assert rank["masks"] == sorted(i.id for i in single.items)
