"""Every estimator, option and sampling scheme is unbiased for the mean and the scale gradients.

Checked on a non-quadratic integrand (f = Σ_j cos(k z_j), closed-form gradients) with a
different σ per coordinate, against |mean − truth| < 5·SE.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import estimators
from estimators import Gaussian, GaussianParams, baselines, control_variates, sampling
from problems.gaussian_expectation import GaussianExpectation
from tests.estimators.checks import assert_unbiased, estimates, exact_grad


def with_state(estimator, state):
    """The estimator at a fixed carried state (a moving-average baseline's current b)."""
    return lambda *args: estimator(*args, state=state)[0]


SF = estimators.score_function
configure = estimators.configure
# name -> the estimator, configured with a sampling scheme (the scale gradient is the family's: learn_scale).
ESTIMATORS = {
    "score_function": lambda sampling: configure(SF, sampling=sampling),
    "sf_delta": lambda sampling: configure(functools.partial(SF, control_variate=control_variates.delta()),
                                           sampling=sampling),
    "sf_optimal": lambda sampling: configure(functools.partial(SF, baseline=baselines.optimal(pilot=20)),
                                             sampling=sampling),
    "sf_leave_one_out": lambda sampling: configure(functools.partial(SF, baseline=baselines.leave_one_out()),
                                                   sampling=sampling),
    "sf_moving_average": lambda sampling: with_state(
        configure(functools.partial(SF, baseline=baselines.moving_average(0.9)), sampling=sampling), 1.3),
    "reparameterization": lambda sampling: configure(estimators.reparameterization, sampling=sampling),
    "measure_valued": lambda sampling: configure(estimators.measure_valued, sampling=sampling),
    "measure_valued_uncoupled": lambda sampling: configure(
        functools.partial(estimators.measure_valued, coupling=False), sampling=sampling),
}
SCHEMES = [sampling.independent, sampling.antithetic, sampling.qmc]
# The leave-one-out baseline is refused with dependent sets (see the last test).
CASES = [(name, scheme) for name in ESTIMATORS for scheme in SCHEMES
         if name != "sf_leave_one_out" or scheme is sampling.independent]


@pytest.mark.parametrize("name, scheme", CASES, ids=lambda x: getattr(x, "__name__", x))
def test_unbiased_for_mean_and_scale(name, scheme):
    problem = GaussianExpectation(f="cos", k=1.5, dim=2)
    mean, scale = np.array([0.4, -1.1]), np.array([0.8, 1.3])
    estimator = ESTIMATORS[name](sampling=scheme)
    est = estimates(estimator, problem, mean, scale, samples=4, replicates=20_000, seed=11, learn_scale=True)
    truth = exact_grad(problem, mean, scale, learn_scale=True)
    assert est.shape == (20_000, 4)
    assert_unbiased(est, truth)


@pytest.mark.parametrize("scheme", [sampling.antithetic, sampling.qmc], ids=lambda s: s.__name__)
def test_leave_one_out_refuses_dependent_sets(scheme):
    """Its b_i would contain sample i's antithetic partner (or QMC neighbours): biased, so refused.

    The refusal is the baseline wrapper's now (it was the score function's), and ``check``
    says so before any call.
    """
    problem = GaussianExpectation(f="cos", k=1.5, dim=2)
    estimator = configure(functools.partial(SF, baseline=baselines.leave_one_out()), sampling=scheme)
    with pytest.raises(ValueError, match="independent sampling"):
        estimator(problem, Gaussian(), GaussianParams(np.zeros(2), 1.0), np.random.default_rng(0), 4)
    with pytest.raises(estimators.Inapplicable, match="sampling=independent"):
        estimators.check(estimator, Gaussian(), scheme.__name__)
