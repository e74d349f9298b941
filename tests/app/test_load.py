"""The load script with 8 concurrent visitors (the README's figures are from 50): every request
answered, each exactly as it is answered alone, and waiting visitors shown their place."""
from __future__ import annotations

from benchmarks.load_app import main

CLIENTS = 8


def test_eight_concurrent_visitors_get_what_each_gets_alone(capsys):
    figures = main(["--clients", str(CLIENTS), "--request-timeout", "240", "--timeout", "600"])

    assert figures["problems"] == []
    requests = CLIENTS + len(range(2, CLIENTS, 3))  # follow-up visitors ask twice
    assert figures["requests"] == figures["answered"] == figures["identical"] == requests
    assert figures["distinct_masks"] >= CLIENTS // 2 and figures["non_empty_masks"] >= 1
    assert figures["max_queue_position"] >= CLIENTS // 2  # they really waited for each other
    assert figures["visitors_shown_an_estimate"] >= 1
    assert 0 < figures["p50_s"] <= figures["p95_s"] <= figures["max_s"]
    assert figures["requests_per_min"] > 0
    printed = capsys.readouterr().out
    assert f"{CLIENTS} concurrent clients, {requests} requests" in printed
    assert "p50" in printed and "requests/min" in printed
