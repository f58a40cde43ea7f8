"""Results users already have stay bit-identical: the default run, every job of the
``variance_vs_k`` preset and a set of option combinations, against values pinned from the
suite as it was before distribution families were made explicit (``tests/data/pinned_metrics*.json``).

Every pinned file was written by this module at commit 396e0c0 "Pin the metrics of existing
configurations", one per kind of CPU: numpy picks its SIMD kernels at run time, and sums and
transcendental functions (exp, cos, …) round differently in the last bit on AVX-512 than
without it. ``pinned_metrics.json`` came from a CPU without the AVX-512 kernels numpy uses here;
``pinned_metrics.avx512.json`` (its ``_written_on`` says where) from a checkout of that commit
on an AMD EPYC with them. A run must equal, value for value, the pins of one of them; they are
never rewritten to make a change pass. Every value is compared as the exact float (its hex
form), wall time aside.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from experiments.config import PROJECT_ROOT
from experiments.runner import compute
from experiments.sgd import BIAS_CURVES, TIMINGS

PINNED = sorted((Path(__file__).resolve().parent.parent / "data").glob("pinned_metrics*.json"))
K = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
ESTIMATORS = ["score_function", "score_function_optimal_baseline", "reparameterization", "measure_valued"]
# Short runs (300 steps) through the options that existed then: baselines, control variate,
# schemes, the measure-valued estimator uncoupled, a learned scale with Adam, another problem,
# and a run that diverges.
EXTRAS = {
    "moving_average": ["estimator/baseline=moving_average", "samples=3"],
    "optimal": ["estimator=score_function_optimal_baseline", "samples=2"],
    "leave_one_out": ["estimator/baseline=leave_one_out", "samples=4"],
    "delta": ["estimator=score_function_delta", "problem.dim=3"],
    "antithetic": ["estimator=reparameterization", "sampling=antithetic", "samples=3", "step_size=1e-2"],
    "qmc": ["sampling=qmc", "samples=4", "step_size=1e-3", "problem.distance=10"],
    "measure_valued_uncoupled": ["estimator=measure_valued", "estimator.coupling=false", "learn_scale=true",
                                 "step_size=1e-3", "problem.distance=10", "problem.sigma=0.7"],
    "learn_scale_adam": ["estimator=reparameterization", "learn_scale=true", "optimizer=adam", "step_size=0.1",
                         "problem.dim=3", "problem.sigma=0.3"],
    "gaussian_expectation_cos": ["problem=gaussian_expectation", "problem.f=cos", "problem.k=2.0",
                                 "estimator=measure_valued", "step_size=0.05", "learn_scale=true"],
    "diverging": ["step_size=0.05", "samples=1"],
}


def cases() -> dict[str, list[str]]:
    out = {"default": []}
    for e, f, k in itertools.product(ESTIMATORS, ["square", "exp", "cos"], K):
        out[f"variance_vs_k/{e}/{f}/{k}"] = ["experiment=variance_vs_k", f"estimator={e}", f"problem.f={f}",
                                             f"problem.k={k}"]
    for name, overrides in EXTRAS.items():
        out[f"extra/{name}"] = ["steps=300", "log_points=31", *overrides]
    return out


# Added since the pin: the bias curves, and the cost of an estimate.
ADDED = (*BIAS_CURVES, "work_normalized_variance", "evals_per_estimate")


def metrics(overrides: list[str], write: bool = False) -> dict:
    """Every logged curve and summary value of the run (wall time aside), as exact hex floats."""
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        result = compute(compose("config", overrides))
    out = {"steps": [int(s) for s in result.steps], "trajectory_len": len(result.trajectory),
           "trajectory_last": [float(x).hex() for x in result.trajectory[-1]]}
    for key, values in result.curves.items():
        if key in ADDED and not write:  # curves added since the pin: new results, not changed ones
            continue
        if any(v == v for v in values):  # a curve with no finite value is not logged
            out[key] = [float(v).hex() for v in values]
    for key, value in result.summary.items():
        if key not in TIMINGS and (write or key not in ADDED):
            out["summary/" + key] = float(value).hex()
    return out


@pytest.fixture(scope="module")
def pinned() -> dict[str, dict]:
    """Each pinned file's values by case, keyed by file name."""
    return {path.name: json.loads(path.read_text()) for path in PINNED}


# A problem without an optimum (exp(−k x²)) logged NaN distance summaries then; it logs none now.
NO_OPTIMUM = ("summary/final_dist", "summary/best_dist", "summary/steps_to_tol", "summary/converged")


@pytest.mark.parametrize("name", list(cases()))
def test_results_are_bit_identical_to_the_pinned_ones(name, pinned):
    got = metrics(cases()[name])
    differing = {}
    for file, values in pinned.items():
        expected = dict(values[name])
        if "/exp/" in name:
            for key in NO_OPTIMUM:
                expected.pop(key, None)
        if got == expected:
            return
        differing[file] = sorted(k for k in expected.keys() | got.keys() if got.get(k) != expected.get(k))
    simd = np.show_config(mode="dicts")["SIMD Extensions"]
    pytest.fail(f"{name}: equal to none of the pinned files (numpy SIMD here: {simd}); keys that differ: {differing}")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    PINNED.write_text(json.dumps({name: metrics(o, write=True) for name, o in cases().items()}, indent=0,
                                 sort_keys=True))
