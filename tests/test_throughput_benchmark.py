"""``benchmarks/throughput.py``: the efficiency is each round's steps against the bare
GEMMs timed around them, and the reported figure is the median round."""

from __future__ import annotations

import json
import time

from helpers import BENCHMARKS, load_tutorial


def test_interleaved_rounds_compare_each_step_window_with_its_neighbours():
    tp = load_tutorial("throughput", BENCHMARKS)
    calls = []

    def step():  # 2 "FLOPs" in 2 ms: half the rate of the GEMMs below
        calls.append("S")
        time.sleep(0.002)

    def gemms():
        calls.append("G")
        time.sleep(0.001)

    rounds = tp.interleaved_efficiencies(step, gemms, 1.0, 0.06, 3)
    assert len(rounds) == 3
    for r in rounds:
        assert 0.3 < r["efficiency"] < 0.7  # the step does half the GEMMs' work a second
        assert abs(r["efficiency"] - r["steps_per_s"] / r["gemm_flops"]) < 1e-12
    # G...G S...S G...G S...S G...G S...S G...G: four GEMM windows around three step windows
    runs = "".join(c for i, c in enumerate(calls) if i == 0 or c != calls[i - 1])
    assert runs == "GSGSGSG"


def test_the_command_reports_the_median_round(tmp_path, capsys):
    tp = load_tutorial("throughput", BENCHMARKS)
    out = tmp_path / "t.json"
    argv = ["--batch-sizes", "2", "--seconds", "0.05", "--rounds", "3", "--no-readout"]
    tp.main([*argv, "--json", str(out)])
    (row,) = json.loads(out.read_text())["results"]
    assert len(row["round_efficiencies"]) == 3
    assert row["efficiency"] == sorted(row["round_efficiencies"])[1]
    assert "median of rounds" in capsys.readouterr().out


def test_step_milliseconds_times_each_window_of_calls():
    tp = load_tutorial("throughput", BENCHMARKS)
    calls = []

    def step():  # about 3 ms a call
        calls.append(1)
        time.sleep(0.003)

    ms = tp.step_milliseconds(step, windows=3, steps=4, warmup=2)
    assert len(calls) == 2 + 3 * 4
    assert len(ms) == 3
    assert all(2.9 < m < 30 for m in ms)  # milliseconds a call, not seconds or a total


def test_the_command_prints_step_milliseconds(capsys):
    tp = load_tutorial("throughput", BENCHMARKS)
    tp.main(["--batch-sizes", "2", "--no-readout", "--step-ms"])
    out = capsys.readouterr().out
    assert out.startswith("batch     2: ") and "ms a step (windows: " in out
    assert "GFLOP" not in out  # no GEMMs timed
