"""Record goldens: the numbers of one short training run of every experiment.

Each run in :data:`RUNS` is the command line program,
``python -m ff_numpy train EXPERIMENT OPTIONS --out DIR``, with a fixed seed, a few
hundred training images, tiny nets (where the experiment allows it) and one or two
epochs, in a subprocess with one BLAS thread. Its golden, ``<name>.json`` next to this
script, holds:

* ``argv``: the arguments after ``python -m ff_numpy``; the run appends ``--out DIR``;
* ``metrics``: every numeric entry of ``metrics.json`` (the history and the final
  metrics, not the configuration), flattened to ``/``-joined paths such as
  ``history/0/train_loss/layer0``, except wall-clock, CPU-time, memory and host keys
  (:data:`HOST_WORDS`);
* ``arrays``: for every array of ``model.npz`` its shape and dtype, and for numeric
  arrays the float64 sum, the float64 sum of squares and the first
  :data:`N_FIRST` flattened values. A text array (the checkpoint's ``__meta__``) gets
  the dtype kind ``"str"`` only, as its length varies with the timings it holds;
* ``meta``: the numeric entries of the checkpoint's ``__meta__`` JSON (configuration,
  epochs done, the random generator's state), without its history (a copy of the
  metrics) and the same excluded keys.

:func:`compare` is what ``tests/test_goldens.py`` checks a new run against: error
rates, integers and booleans exactly, other floats to a relative error of
:data:`RTOL` (absolute :data:`ATOL` near zero, where for an array's sum and first values
"near zero" is relative to the array's magnitude), names, shapes and dtypes exactly.

Record against the code in folder ``DIR`` (the one holding the ``ff_numpy`` package),
with the data found through ``FF_NUMPY_DATA``::

    FF_NUMPY_DATA=../shared/data python tests/goldens/make_goldens.py --code DIR

``--dest`` writes the goldens elsewhere. ``--check OTHER`` compares the goldens in
folder ``OTHER`` (recorded with ``--dest OTHER``, for example from changed code) with
those in ``--dest`` and says, per run, whether they are identical, equal within the
tolerances or different (with the differing keys)::

    python tests/goldens/make_goldens.py --code DIR --dest OTHER
    python tests/goldens/make_goldens.py --check OTHER
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

#: Relative tolerance of the float comparisons.
RTOL = 1e-5
#: Absolute tolerance of the float comparisons, for values near zero.
ATOL = 1e-7
#: Number of leading flattened values recorded per array.
N_FIRST = 8
#: Keys with one of these words (``_``-separated) are left out: timings, memory, host.
HOST_WORDS = frozenset(
    ("seconds", "second", "time", "wall", "clock", "memory", "rss", "mb", "host", "cores")
    + ("threads", "cpu", "date", "commit")
)
#: One BLAS / OpenMP thread, so that sums are taken in one order.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_SMALL = ["--train-size", "500", "--batch-size", "50", "--epochs", "2", "--seed", "3"]
_FF = ["--hidden", "40", "30", *_SMALL]
_TRACK = ["--eval-every", "1", "--track-test"]

#: name -> arguments after ``python -m ff_numpy train`` (``--no-progress`` is added).
RUNS: dict[str, list[str]] = {
    "supervised_random": ["supervised", *_FF, *_TRACK, "--negatives", "random"],
    "supervised_hard": ["supervised", *_FF, "--negatives", "hard"],
    "supervised_jitter": ["supervised", *_FF, "--jitter", "2"],
    "supervised_peer": ["supervised", *_FF, "--peer-strength", "0.3"],
    "supervised_unsquared": ["supervised", *_FF, "--goodness", "sum"],
    "supervised_adam_min_box": [
        "supervised",
        *_FF,
        "--optimizer",
        "adam",
        "--objective",
        "min",
        "--norm",
        "l2",
        "--dropout",
        "0.2",
        "--black-box",
        "0",
        "--peer-strength",
        "0",
    ],
    "backprop": ["backprop", "--hidden", "40", "30", *_SMALL, "--track-test"],
    "backprop_adam_box": [
        "backprop",
        "--hidden",
        "40",
        "30",
        *_SMALL,
        "--optimizer",
        "adam",
        "--black-box",
        "0",
    ],
    "online_oneshot": [
        "online",
        "--method",
        "oneshot",
        "--hidden",
        "40",
        "30",
        *_SMALL,
        "--chunk",
        "250",
        "--eval-size",
        "500",
    ],
    "online_minibatch": [
        "online",
        "--method",
        "minibatch",
        "--hidden",
        "40",
        "30",
        *_SMALL,
        "--chunk",
        "250",
        "--eval-size",
        "500",
    ],
    "unsupervised": ["unsupervised", "--hidden", "40", "30", "30", *_SMALL, "--track-test"],
    "local": [
        "local",
        "--train-size",
        "200",
        "--batch-size",
        "50",
        "--epochs",
        "1",
        "--seed",
        "3",
    ],
    "recurrent": [
        "recurrent",
        "--hidden",
        "40",
        "30",
        *_SMALL,
        "--iterations",
        "4",
        "--average-iterations",
        "2",
        "3",
        "--warmup-batches",
        "5",
        "--eval-every",
        "1",
        "--eval-size",
        "500",
        "--track-test",
    ],
}


def golden_argv(name: str) -> list[str]:
    """Arguments after ``python -m ff_numpy`` of run ``name``, without ``--out DIR``.

    Parameters
    ----------
    name : str
        A key of :data:`RUNS`.

    Returns
    -------
    list of str
    """
    return ["train", *RUNS[name], "--no-progress"]


def run_env(code: Path | None = None) -> dict:
    """Environment of a run: this one, with one BLAS thread and optionally ``code`` first.

    Parameters
    ----------
    code : Path, optional
        Folder holding the ``ff_numpy`` package to run, put first on ``PYTHONPATH``.

    Returns
    -------
    dict
    """
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = "1"
    if code is not None:
        rest = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(code) if not rest else os.pathsep.join([str(code), rest])
    return env


def package_file(cwd: Path, env: dict) -> Path:
    """Where ``import ff_numpy`` resolves to in a subprocess run in ``cwd`` with ``env``.

    Parameters
    ----------
    cwd : Path
    env : dict

    Returns
    -------
    Path
        The resolved ``ff_numpy/__init__.py``.
    """
    out = subprocess.run(
        [sys.executable, "-c", "import ff_numpy; print(ff_numpy.__file__)"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip()).resolve()


def run_cli(argv: list[str], out: Path, cwd: Path, env: dict) -> float:
    """Run ``python -m ff_numpy ARGV --out OUT``; return its wall-clock seconds.

    Parameters
    ----------
    argv : list of str
        Arguments after ``python -m ff_numpy``.
    out : Path
        Output folder.
    cwd : Path
        Working folder (its ``ff_numpy`` package, if any, is the one imported).
    env : dict
        Environment, see :func:`run_env`.

    Returns
    -------
    float

    Raises
    ------
    RuntimeError
        When the run fails; the message holds the command and its output.
    """
    cmd = [sys.executable, "-m", "ff_numpy", *argv, "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited with {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return seconds


def _is_host_key(key: str) -> bool:
    return not HOST_WORDS.isdisjoint(re.split(r"[^a-z0-9]+", key.lower()))


def numeric_leaves(obj, prefix: str = "") -> dict:
    """Flatten the numbers of a JSON value to ``{"a/0/b": number}``.

    Parameters
    ----------
    obj : object
        Parsed JSON: dicts, lists, numbers, booleans, strings, None.
    prefix : str
        Path of ``obj``.

    Returns
    -------
    dict
        Paths to numbers and booleans; strings and None are left out, and so is every
        dict entry whose key holds one of :data:`HOST_WORDS`.
    """
    leaves = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not _is_host_key(str(key)):
                leaves.update(numeric_leaves(value, f"{prefix}{key}/"))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            leaves.update(numeric_leaves(value, f"{prefix}{i}/"))
    elif isinstance(obj, (bool, int, float)):
        leaves[prefix.rstrip("/")] = obj
    return leaves


def _py(value):
    """A NumPy scalar as the Python int, float or bool that JSON keeps exactly."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return float(value)


def array_summary(a: np.ndarray) -> dict:
    """Shape, dtype, float64 sum and sum of squares and first values of an array.

    Parameters
    ----------
    a : ndarray

    Returns
    -------
    dict
        ``shape`` and ``dtype`` always (``dtype`` is ``"str"`` for text arrays);
        ``sum``, ``sum_sq`` and ``first`` (the first :data:`N_FIRST` flattened values)
        for numeric and boolean arrays.
    """
    if a.dtype.kind in "USO":
        return {"shape": list(a.shape), "dtype": "str"}
    x = a.astype(np.float64)
    return {
        "shape": list(a.shape),
        "dtype": str(a.dtype),
        "sum": float(np.sum(x)),
        "sum_sq": float(np.sum(x * x)),
        "first": [_py(v) for v in a.ravel()[:N_FIRST]],
    }


def summarise(out: Path) -> dict:
    """The numbers of a finished run: ``metrics``, ``arrays`` and ``meta``.

    Parameters
    ----------
    out : Path
        The run's output folder, holding ``metrics.json`` and ``model.npz``.

    Returns
    -------
    dict
    """
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("config", None)
    arrays, meta = {}, {}
    with np.load(out / "model.npz", allow_pickle=False) as npz:
        for key in sorted(npz.files):
            a = npz[key]
            arrays[key] = array_summary(a)
            if key == "__meta__":
                parsed = json.loads(str(a))
                parsed.pop("history", None)
                meta = numeric_leaves(parsed)
    return {"metrics": numeric_leaves(metrics), "arrays": arrays, "meta": meta}


def _flat_arrays(arrays: dict) -> dict:
    flat = {}
    for name, stats in arrays.items():
        for stat, value in stats.items():
            if stat == "first":
                for i, v in enumerate(value):
                    flat[f"arrays/{name}/first/{i}"] = v
                flat[f"arrays/{name}/first/len"] = len(value)
            else:
                flat[f"arrays/{name}/{stat}"] = value
    return flat


def flatten(summary: dict) -> dict:
    """One flat ``{path: value}`` of a summary, the form :func:`compare` works on.

    Parameters
    ----------
    summary : dict
        Holds ``metrics``, ``arrays`` and ``meta`` as :func:`summarise` returns them
        (a golden holds them too).

    Returns
    -------
    dict
    """
    flat = {f"metrics/{k}": v for k, v in summary["metrics"].items()}
    flat.update(_flat_arrays(summary["arrays"]))
    flat.update({f"meta/{k}": v for k, v in summary["meta"].items()})
    return flat


def _scales(arrays: dict) -> dict:
    """Magnitude of each array statistic that can cancel to near zero.

    A sum of values of both signs can be tiny next to its terms, and a single entry
    tiny next to its array, so that a rounding-level change of the terms is a large
    relative change of it. Their absolute tolerance is :data:`RTOL` times this scale:
    ``sqrt(n * sum_sq)`` (which bounds the sum of absolute values) for the sum, the
    root mean square ``sqrt(sum_sq / n)`` for each of the first values.
    """
    scales = {}
    for name, stats in arrays.items():
        n = math.prod(stats["shape"])
        if "sum_sq" not in stats or not n or not math.isfinite(stats["sum_sq"]):
            continue
        scales[f"arrays/{name}/sum"] = math.sqrt(n * stats["sum_sq"])
        rms = math.sqrt(stats["sum_sq"] / n)
        for i in range(len(stats["first"])):
            scales[f"arrays/{name}/first/{i}"] = rms
    return scales


def _exact(key: str, value) -> bool:
    """Compared exactly: error rates, integers, booleans, names, shapes and dtypes."""
    if isinstance(value, (bool, int, str, list)):
        return True
    return "error" in key.lower() or key.endswith(("/shape", "/dtype"))


def _equal(key: str, golden, now, scale: float = 0.0) -> bool:
    if isinstance(golden, bool) or isinstance(now, bool):
        return type(golden) is type(now) and golden == now
    if not isinstance(golden, (int, float)) or not isinstance(now, (int, float)):
        return golden == now
    if math.isnan(golden) or math.isnan(now):
        return math.isnan(golden) and math.isnan(now)
    if _exact(key, golden):
        return golden == now
    if math.isinf(golden) or math.isinf(now):
        return golden == now
    return abs(golden - now) <= max(RTOL * max(abs(golden), abs(now), scale), ATOL)


def compare(golden: dict, now: dict) -> list[str]:
    """Every difference between a golden and a new summary, as ``key: golden vs now``.

    Error rates, integers, booleans, names, shapes and dtypes must be equal; other
    floats may differ by :data:`RTOL` relative, or :data:`ATOL` absolute near zero. For
    an array's sum and first values, "near zero" is relative to the array's magnitude
    (see :func:`_scales`): a sum of weights of both signs that cancels to 1e-7 moves by
    more than 1e-7 when its terms change in their last bits.

    Parameters
    ----------
    golden, now : dict
        Each holds ``metrics``, ``arrays`` and ``meta`` (see :func:`summarise`).

    Returns
    -------
    list of str
        One line per differing key, ``"<missing>"`` standing for a key that one side
        lacks; empty when they agree.
    """
    g, n = flatten(golden), flatten(now)
    scale_g, scale_n = _scales(golden["arrays"]), _scales(now["arrays"])
    lines = []
    for key in sorted(set(g) | set(n)):
        a, b = g.get(key, "<missing>"), n.get(key, "<missing>")
        scale = max(scale_g.get(key, 0.0), scale_n.get(key, 0.0))
        if key not in g or key not in n or not _equal(key, a, b, scale):
            lines.append(f"{key}: golden {a!r} vs now {b!r}")
    return lines


def bit_differences(golden: dict, now: dict) -> int:
    """Number of keys whose values are not identical, tolerance or not.

    Parameters
    ----------
    golden, now : dict
        Each holds ``metrics``, ``arrays`` and ``meta`` (see :func:`summarise`).

    Returns
    -------
    int
    """
    g, n = flatten(golden), flatten(now)
    missing = object()

    def same(a, b) -> bool:
        both_nan = isinstance(a, float) and isinstance(b, float) and a != a and b != b
        return a is not missing and b is not missing and (a == b or both_nan)

    return sum(not same(g.get(key, missing), n.get(key, missing)) for key in set(g) | set(n))


def record(name: str, code: Path, env: dict, dest: Path) -> float:
    """Run ``name`` against the package in ``code`` and write ``dest/<name>.json``.

    Parameters
    ----------
    name : str
        A key of :data:`RUNS`.
    code : Path
        Working folder of the run (its ``ff_numpy`` package is the one imported).
    env : dict
        Environment, see :func:`run_env`.
    dest : Path
        Folder of the golden.

    Returns
    -------
    float
        Wall-clock seconds of the run.
    """
    argv = golden_argv(name)
    with tempfile.TemporaryDirectory() as tmp:
        seconds = run_cli(argv, Path(tmp) / "out", code, env)
        summary = summarise(Path(tmp) / "out")
    golden = {
        "name": name,
        "argv": argv,
        "command": "python -m ff_numpy " + " ".join(argv) + " --out DIR",
        **summary,
    }
    (dest / f"{name}.json").write_text(json.dumps(golden, indent=1) + "\n")
    return seconds


def load_golden(path: Path) -> dict:
    """Read a golden file.

    Parameters
    ----------
    path : Path

    Returns
    -------
    dict
    """
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    """Command line: record the goldens (or compare two sets of them).

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0, or 1 when ``--check`` finds differences.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        help="folder holding the ff_numpy package to record (default: this checkout)",
    )
    p.add_argument("--dest", type=Path, default=HERE, help="folder of the goldens")
    p.add_argument("--only", nargs="+", choices=sorted(RUNS), help="record only these runs")
    p.add_argument(
        "--check",
        type=Path,
        metavar="DIR",
        help="compare the goldens in DIR with those in --dest instead of recording",
    )
    args = p.parse_args(argv)
    if args.check is not None:
        bad = 0
        for name in args.only or RUNS:
            golden = load_golden(args.dest / f"{name}.json")
            now = load_golden(args.check / f"{name}.json")
            diffs = compare(golden, now)
            bad += bool(diffs)
            flat = len(flatten(golden))
            bits = bit_differences(golden, now)
            verdict = "differs" if diffs else "within tolerance" if bits else "identical"
            print(f"{name}: {verdict} ({bits} of {flat} values not identical)")
            for line in diffs:
                print("  " + line)
        return int(bool(bad))
    code = args.code.resolve()
    env = run_env(code)
    found = package_file(code, env)
    if code not in found.parents:
        p.error(f"ff_numpy resolves to {found}, not inside {code}")
    print(f"recording {found.parent}")
    args.dest.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for name in args.only or RUNS:
        seconds = record(name, code, env, args.dest)
        total += seconds
        print(f"{name:26s} {seconds:6.2f} s")
    print(f"{'total':26s} {total:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
