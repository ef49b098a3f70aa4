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


# ----------------------------------------------------------------------------- Sec. 4's claims
def _history(train_errors, seconds, key):
    """A per-epoch history: training error ``key`` and CPU seconds of every epoch."""
    return [
        {"epoch": e, "train_seconds": 2 * seconds, "train_cpu_seconds": seconds, key: err}
        for e, err in enumerate(train_errors, 1)
    ]


def _bp(test, train_errors=None, seconds=25.0):
    train_errors = train_errors or [0.4 / e for e in range(1, 61)]
    history = _history(train_errors, seconds, "train_error")
    return {"history": history, "train_error": train_errors[-1], "test_error": test}


def _ff(good, soft, by_iteration=None, train_errors=None, seconds=225.0):
    train_errors = train_errors or [0.6 - 0.006 * e for e in range(1, 61)]
    history = _history(train_errors, seconds, "train_error_softmax")
    return {
        "history": history,
        "train_error_goodness": 0.2,
        "test_error_goodness": good,
        "train_error_softmax": 0.3,
        "test_error_softmax": soft,
        "error_by_iteration": by_iteration or [0.6, 0.5, 0.45, 0.42, 0.41, 0.42, 0.43] + [0.44] * 3,
    }


def _paper():
    """Table 1's test errors: every claim holds."""
    return {
        "cifar10_bp_2": _bp(0.37),
        "cifar10_bp_3": _bp(0.39),
        "cifar10_ff_min_2": _ff(0.41, 0.45),
        "cifar10_ff_min_3": _ff(0.41, 0.44),
        "cifar10_ff_max_2": _ff(0.44, 0.46),
        "cifar10_ff_max_3": _ff(0.44, 0.46),
    }


def _verdicts(runs):
    return [claim.verdict for claim in rep.claims(runs)]


def test_claims_confirmed_on_the_papers_numbers():
    claims = rep.claims(_paper())
    assert [c.label for c in claims] == ["(a)", "(b)", "(c)", "(d)", "(e)"]
    assert [c.verdict for c in claims] == ["confirmed"] * 5
    a, b, c, d, e = (claim.details for claim in claims)
    assert "cifar10_ff_min_2: goodness 41.00% < softmax 45.00%" in a
    assert "2 layers: goodness min 41.00% < max 44.00%, softmax min 45.00% < max 46.00%" in b
    assert any("min ssq:" in line and "change -2.00 points" in line for line in c)
    assert "0.5 point" in c[0]
    # FF 59.4% after epoch 1 (225 CPU s); BP 40.0% after epoch 1 and 4.4% after 9 epochs
    # (225 s); at epoch 60, FF's 13,500 s are long after BP's last epoch (1,500 s)
    line = next(x for x in d if x.startswith("cifar10_ff_min_2"))
    assert "FF 59.4/54.0/42.0/24.0% at epochs 1/10/30/60 (225/2,250/6,750/13,500 CPU s)" in line
    assert "BP 40.0/4.0/1.3/0.7% at the same epochs, 4.4/0.7/0.7/0.7% after" in line
    assert "cifar10_ff_max_3: lowest 41.00% at iteration 5 (within 4-6;" in e[-1]


def test_claims_refuted():
    runs = _paper()
    runs["cifar10_ff_max_3"] = _ff(0.47, 0.46, by_iteration=[0.5] * 8 + [0.45, 0.46])
    runs["cifar10_ff_min_2"] = _ff(0.45, 0.45)  # a tie is no win
    runs["cifar10_bp_3"] = _bp(0.35)  # the 3-layer gaps are 6 and 11 points: grown
    assert _verdicts(runs) == ["refuted"] * 3 + ["confirmed", "refuted"]
    claims = rep.claims(runs)
    assert "cifar10_ff_min_2: goodness 45.00% >= softmax 45.00%" in claims[0].details
    assert "3 layers: goodness min 41.00% < max 47.00%, softmax min 44.00% < max 46.00%" in (
        claims[1].details
    )
    assert "cifar10_ff_max_3: lowest 45.00% at iteration 9 (3 after 4-6;" in claims[4].details[-1]
    early = _ff(0.41, 0.45, by_iteration=[0.5, 0.4] + [0.45] * 8)
    detail = rep.claim_best_iteration({"cifar10_ff_min_2": early}).details[0]
    assert "(2 before 4-6;" in detail  # and how far the window's best is from the lowest:
    assert detail.endswith("45.00/45.00/45.00%; their best 5.00 point above the lowest)")
    # a gap may grow by up to the tolerance (0.5 point): by 0.4 and 0.1 point it has not
    # grown, by 0.7 point it has
    runs = _paper()
    runs["cifar10_bp_3"] = _bp(0.384)
    assert rep.claim_gap_does_not_grow(runs).verdict == "confirmed"  # gaps 4.0 -> 2.6 points
    runs["cifar10_ff_min_3"] = _ff(0.428, 0.45)  # min: 4.0 -> 4.4 points
    runs["cifar10_ff_max_3"] = _ff(0.455, 0.46)  # max: 7.0 -> 7.1 points
    assert rep.claim_gap_does_not_grow(runs).verdict == "confirmed"
    runs["cifar10_ff_max_3"] = _ff(0.461, 0.47)  # max: 7.0 -> 7.7 points
    assert rep.claim_gap_does_not_grow(runs).verdict == "refuted"


def test_bp_trains_faster_refuted_by_epochs_or_by_seconds():
    runs = _paper()
    flat = [0.5] * 60  # BP stuck at 50% training error: FF below it from epoch 10
    runs["cifar10_bp_2"] = _bp(0.37, train_errors=flat)
    claim = rep.claim_bp_trains_faster(runs)
    assert claim.verdict == "refuted" and "BP 50.0/50.0/50.0/50.0% at the same" in claim.details[1]
    # BP below FF at every epoch, but so slow per epoch that, after FF's 225 s of its
    # first epoch, BP has finished none (not compared) and after FF's 2,250 s only one
    runs = _paper()
    runs["cifar10_bp_2"] = _bp(0.37, train_errors=[0.59] * 60, seconds=2000.0)
    comparison = rep.compare_training(runs["cifar10_bp_2"], runs["cifar10_ff_min_2"])
    assert comparison["bp_seconds"][:2] == [None, 0.59] and comparison["ff"][1] == 0.54
    assert rep.claim_bp_trains_faster(runs).verdict == "refuted"
    # wall seconds where CPU seconds are missing; FF's lower classifier at each epoch
    for record in runs["cifar10_bp_2"]["history"]:
        del record["train_cpu_seconds"]
    runs["cifar10_ff_min_2"]["history"][9]["train_error_goodness"] = 0.3
    comparison = rep.compare_training(runs["cifar10_bp_2"], runs["cifar10_ff_min_2"])
    assert comparison["seconds_key"] == "train_seconds" and comparison["seconds"][0] == 450.0
    assert comparison["ff"][1] == 0.3


def test_claims_pending_while_nets_run():
    runs = {name: None for name in rep.TABLE1}
    assert all(v.startswith("pending (needs cifar10_") for v in _verdicts(runs))
    runs = _paper()
    running = {"history": runs["cifar10_ff_max_3"]["history"][:5]}  # no final keys
    runs["cifar10_ff_max_3"] = running
    runs["cifar10_bp_3"] = {"history": []}
    assert not rep.finished("cifar10_ff_max_3", running)
    assert _verdicts(runs) == [
        "pending (needs cifar10_ff_max_3)",
        "pending (needs cifar10_ff_max_3)",
        "pending (needs cifar10_bp_3, cifar10_ff_max_3)",
        "pending (needs cifar10_bp_3, cifar10_ff_max_3)",
        "pending (needs cifar10_ff_max_3)",
    ]
    # the finished nets' numbers are shown meanwhile, and one against the claim refutes it
    a = rep.claims(runs)[0]
    assert len(a.details) == 3
    runs["cifar10_ff_min_2"] = _ff(0.46, 0.45)
    a = rep.claims(runs)[0]
    assert a.verdict == "refuted" and a.details[-1] == "not finished: cifar10_ff_max_3"


def test_claims_flag_end_to_end(tmp_path, capsys):
    runs = _paper()
    del runs["cifar10_ff_max_3"]  # not started
    runs["cifar10_ff_max_2"] = {"history": runs["cifar10_ff_max_2"]["history"][:3]}
    for name, metrics in runs.items():
        metrics["config"] = {"epochs": 60}
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    assert rep.main(["--claims", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    verdicts = [line for line in out.splitlines() if line.startswith("(")]
    assert [line.split(": ", 1)[1] for line in verdicts] == [
        "pending (needs cifar10_ff_max_2, cifar10_ff_max_3)",
        "pending (needs cifar10_ff_max_2, cifar10_ff_max_3)",
        "pending (needs cifar10_ff_max_2, cifar10_ff_max_3)",
        "pending (needs cifar10_ff_max_2, cifar10_ff_max_3)",
        "pending (needs cifar10_ff_max_2, cifar10_ff_max_3)",
    ]
    assert "    cifar10_ff_min_3: goodness 41.00% < softmax 44.00%" in out
    assert "    3 layers: goodness" not in out and "    min ssq: 2 layers FF 41.00%" in out
