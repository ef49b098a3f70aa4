"""benchmarks/reproduce.py: every entry is a valid command; status lines read metrics.json."""

from __future__ import annotations

import json

import pytest
from helpers import BENCHMARKS, load_tutorial

from ff_numpy import cli

rep = load_tutorial("reproduce", BENCHMARKS)


@pytest.mark.parametrize("name", sorted(rep.REPRODUCTIONS))
def test_every_entry_parses_as_a_train_command(name, tmp_path):
    entry = rep.REPRODUCTIONS[name]
    args = cli.build_parser().parse_args(entry.argv(tmp_path / name))
    assert args.experiment == entry.experiment
    assert 0.005 < entry.paper < 0.02 and entry.hours > 0
    assert cli.build_parser().parse_args(entry.argv(tmp_path, resume=True)).resume


def _write(run, config_epochs, history, **final):
    run.mkdir(parents=True)
    metrics = {"config": {"epochs": config_epochs}, "history": history, **final}
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_status_of_runs_not_started_in_progress_and_finished(tmp_path):
    assert "not started" in rep.status("jitter", tmp_path)
    _write(
        tmp_path / "jitter",
        500,
        [
            {"epoch": 1, "val_error_softmax": 0.05},
            {"epoch": 2, "val_error_softmax": 0.04, "val_error_goodness": 0.0312},
            {"epoch": 3, "val_error_softmax": 0.03},
        ],
    )
    line = rep.status("jitter", tmp_path)
    assert "3/500 epochs" in line and "val 3.12% (epoch 2)" in line
    _write(tmp_path / "local", 60, [{"epoch": 60}] * 60, test_error_softmax=0.0113)
    assert rep.status("local", tmp_path).endswith("test 1.13% (paper 1.16%): met")
    no_validation = [{"epoch": 1, "test_error_softmax": 0.05}, {"epoch": 2}]
    _write(tmp_path / "progress" / "recurrent", 60, no_validation)
    line = rep.status("recurrent", tmp_path / "progress")
    assert line.endswith("2/60 epochs  test 5.00% (epoch 1)")
    _write(tmp_path / "recurrent", 60, [{"epoch": 60}] * 60, test_error_goodness=0.0141)
    assert rep.status("recurrent", tmp_path).endswith("(paper 1.31%): missed by 0.10 point")


def test_print_shows_the_command_and_resumes_a_stopped_run(tmp_path, capsys):
    assert rep.main(["local", "--runs", str(tmp_path), "--print"]) == 0
    first = capsys.readouterr().out
    assert "-m ff_numpy train local --track-test --out" in first and "--resume" not in first
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "model.npz").write_bytes(b"")
    assert rep.main(["local", "--runs", str(tmp_path), "--print"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("--resume")
    assert rep.main(["--runs", str(tmp_path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(rep.REPRODUCTIONS)
