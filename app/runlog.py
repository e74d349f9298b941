"""One structured log line per run, for the operator of a shared server: which checkpoint and
precision, how long each stage took, and how the run ended (and, if it failed, the error's kind).

The line is JSON (logger "segearth.app.runs", level INFO) so it can be counted and graphed
without parsing prose; the visitor's question and image are not in it.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("segearth.app.runs")


@contextmanager
def run_log(**fields: Any) -> Iterator[dict[str, Any]]:
    """Yield the record (callers add `stages_s` entries as they finish); log it when the run
    ends, however it ends."""
    record: dict[str, Any] = {"event": "run", **fields, "stages_s": {}, "outcome": "ok",
                              "error_kind": None}
    start = time.perf_counter()
    try:
        yield record
    except BaseException as err:
        record["outcome"] = "error"
        # A message already made for the page (gr.Error) carries the original kind as title.
        record["error_kind"] = getattr(err, "title", None) or type(err).__name__
        raise
    finally:
        record["total_s"] = round(time.perf_counter() - start, 4)
        record["stages_s"] = {k: None if v is None else round(v, 4)
                              for k, v in record["stages_s"].items()}
        log.info(json.dumps(record, default=str))
