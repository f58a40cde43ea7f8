"""Every estimator, option and sampling scheme is unbiased for the mean and the scale gradients.

Checked on a non-quadratic integrand (f = Σ_j cos(k z_j), closed-form gradients) with a
different σ per coordinate, against |mean − truth| < 5·SE.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import estimators
from estimators import baselines, control_variates, sampling
from problems.gaussian_expectation import GaussianExpectation
from tests.estimators.checks import assert_unbiased, estimates


def with_state(estimator, state):
    """The estimator at a fixed carried state (a moving-average baseline's current b)."""
    return lambda *args: estimator(*args, state=state)[0]


SF = estimators.score_function
# name -> the estimator, configured with a sampling scheme and the scale gradient.
ESTIMATORS = {
    "score_function": lambda **kw: functools.partial(SF, **kw),
    "sf_delta": lambda **kw: functools.partial(SF, control_variate=control_variates.delta(), **kw),
    "sf_optimal": lambda **kw: functools.partial(SF, baseline=baselines.optimal(pilot=20), **kw),
    "sf_leave_one_out": lambda **kw: functools.partial(SF, baseline=baselines.leave_one_out(), **kw),
    "sf_moving_average": lambda **kw: with_state(
        functools.partial(SF, baseline=baselines.moving_average(0.9), **kw), 1.3),
    "reparameterization": lambda **kw: functools.partial(estimators.reparameterization, **kw),
    "measure_valued": lambda **kw: functools.partial(estimators.measure_valued, **kw),
    "measure_valued_uncoupled": lambda **kw: functools.partial(estimators.measure_valued, coupling=False, **kw),
}
SCHEMES = [sampling.independent, sampling.antithetic, sampling.qmc]
# The leave-one-out baseline is refused with dependent sets (see the last test).
CASES = [(name, scheme) for name in ESTIMATORS for scheme in SCHEMES
         if name != "sf_leave_one_out" or scheme is sampling.independent]


@pytest.mark.parametrize("name, scheme", CASES, ids=lambda x: getattr(x, "__name__", x))
def test_unbiased_for_mean_and_scale(name, scheme):
    problem = GaussianExpectation(f="cos", k=1.5, dim=2)
    mean, scale = np.array([0.4, -1.1]), np.array([0.8, 1.3])
    estimator = ESTIMATORS[name](sampling=scheme, with_scale=True)
    est = estimates(estimator, problem, mean, scale, samples=4, replicates=20_000, seed=11)
    truth = np.concatenate([problem.true_grad(mean, scale), problem.true_grad_scale(mean, scale)])
    assert est.shape == (20_000, 4)
    assert_unbiased(est, truth)


@pytest.mark.parametrize("scheme", [sampling.antithetic, sampling.qmc], ids=lambda s: s.__name__)
def test_leave_one_out_refuses_dependent_sets(scheme):
    """Its b_i would contain sample i's antithetic partner (or QMC neighbours): biased, so refused."""
    problem = GaussianExpectation(f="cos", k=1.5, dim=2)
    estimator = functools.partial(SF, baseline=baselines.leave_one_out(), sampling=scheme)
    with pytest.raises(ValueError, match="independent sampling"):
        estimator(problem, np.zeros(2), 1.0, np.random.default_rng(0), 4)
