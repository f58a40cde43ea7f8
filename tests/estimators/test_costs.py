"""What one estimate costs: every estimator's declared evaluations (``estimators.evaluations``)
against the evaluations of f, ∇f and ∇²f it actually makes, counted point by point."""

from __future__ import annotations

import math

import numpy as np
import pytest

import estimators
from estimators import Bernoulli, BernoulliParams, Categorical, CategoricalParams, Gaussian, GaussianParams
from experiments.config import estimator_options
from problems.bernoulli_toy import BernoulliToy
from problems.categorical_toy import CategoricalToy
from problems.gaussian_expectation import GaussianExpectation


class Counting:
    """An integrand that counts the points it is evaluated at (rows of z, the event's own axes
    aside), for f, ∇f and ∇²f together."""

    def __init__(self, f, event_ndim: int = 1) -> None:
        self.f, self.event_ndim, self.points = f, event_ndim, 0

    def _count(self, z) -> None:
        self.points += math.prod(np.shape(z)[: np.ndim(z) - self.event_ndim])

    def __call__(self, z):
        self._count(z)
        return self.f(z)

    def grad(self, z):
        self._count(z)
        return self.f.grad(z)

    def hessian(self, z):
        self._count(z)
        return self.f.hessian(z)

    def __getattr__(self, name):  # what else the problem knows (an exact optimal baseline): not an evaluation
        return getattr(self.f, name)


D = 3
SETTINGS = {
    "gaussian": (GaussianExpectation(f="cos", k=0.7, dim=D), Gaussian(), GaussianParams(np.full(D, 0.4), 0.8), 1),
    "gaussian+scale": (GaussianExpectation(f="cos", k=0.7, dim=D), Gaussian(learn_scale=True),
                       GaussianParams(np.full(D, 0.4), np.full(D, 0.8)), 1),
    "bernoulli": (BernoulliToy(dim=D), Bernoulli(), BernoulliParams(np.array([-1.0, 0.2, 1.5])), 1),
    "categorical": (CategoricalToy(dim=2, classes=3), Categorical(classes=3),
                    CategoricalParams(np.linspace(-1.0, 1.0, 6)), 2),
}


def _cases():
    for name, estimator in estimator_options():
        for setting, (f, family, params, _) in SETTINGS.items():
            try:
                estimators.check(estimator, family, "independent", f=f)
            except estimators.Inapplicable:
                continue
            # The leave-one-out baseline needs two samples or more.
            for samples in (4,) if ("baseline", "leave_one_out") in estimators.describe(estimator) else (1, 4):
                yield pytest.param(estimator, setting, samples, id=f"{name}-{setting}-{samples}")


@pytest.mark.parametrize("estimator, setting, samples", list(_cases()))
def test_declared_cost_is_the_evaluations_made(estimator, setting, samples):
    f, family, params, event_ndim = SETTINGS[setting]
    declared = estimators.evaluations(estimator, family, params, samples)
    assert declared is not None, "every estimator of the suite declares its cost"
    counting = Counting(f, event_ndim)
    kwargs = {"state": estimators.initial_state(estimator)} if estimators.initial_state(estimator) is not None else {}
    estimator(counting, family, params, np.random.default_rng(0), samples, **kwargs)
    assert counting.points == declared


def test_the_costs_the_literature_quotes():
    """N for the score function, 2 per pair for ARM and DisARM, 2d per sample for the Gaussian
    measure-valued estimator (the mean), N + pilot with the pilot-estimated optimal baseline."""
    gaussian, params = Gaussian(), GaussianParams(np.zeros(D), 1.0)
    bernoulli, logits = Bernoulli(), BernoulliParams(np.zeros(D))
    assert estimators.evaluations(estimators.score_function, gaussian, params, 5) == 5
    assert estimators.evaluations(estimators.reparameterization, gaussian, params, 5) == 5
    assert estimators.evaluations(estimators.arm.disarm, bernoulli, logits, 5) == 10
    assert estimators.evaluations(estimators.measure_valued, gaussian, params, 5) == 5 * 2 * D
    optimal = estimators.baselines.optimal(pilot=7).wrap(estimators.score_function)
    assert estimators.evaluations(optimal, gaussian, params, 5) == 5 + 7


def test_an_estimator_that_declares_nothing_has_no_cost():
    def mine(f, family, params, rng, num_samples, *, sampling=estimators.sampling.independent):
        return estimators.score_function(f, family, params, rng, num_samples, sampling=sampling)

    assert estimators.evaluations(mine, Gaussian(), GaussianParams(np.zeros(D), 1.0), 5) is None
