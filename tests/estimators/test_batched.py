"""A batch of distributions (``batch_shape``): one gradient per datum, unbiased against enumeration,
and equal to per-datum calls that see the same noise."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from estimators import Bernoulli, BernoulliParams, Gaussian, GaussianParams, arm, baselines, relaxed
from estimators.families import sigmoid
from estimators.measure_valued import measure_valued
from estimators.reparameterization import reparameterization
from estimators.score_function import score_function

B, L = 3, 3


class Cubic:
    """f_n(b) = a_nᵀb + c_n·b_0 b_1 b_2 per datum n: not linear, so that the estimators differ."""

    def __init__(self, a: np.ndarray, c: np.ndarray) -> None:
        self.a, self.c = a, c

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return (z * self.a).sum(axis=-1) + self.c * z[..., 0] * z[..., 1] * z[..., 2]

    def grad(self, z: np.ndarray) -> np.ndarray:
        c = np.asarray(self.c)[..., None]
        others = np.stack([z[..., 1] * z[..., 2], z[..., 0] * z[..., 2], z[..., 0] * z[..., 1]], axis=-1)
        return self.a + c * others


A = np.array([[1.0, -2.0, 0.5], [0.3, 0.8, -1.5], [2.0, 0.0, 1.0]])
C = np.array([4.0, -3.0, 6.0])
LOGITS = np.array([[-1.0, 0.2, 1.5], [0.5, -0.7, 0.0], [1.2, 2.0, -0.4]])


def exact_bernoulli_grad(a, c, logits) -> np.ndarray:
    """∂/∂φ_j E f = p_j(1 − p_j)(E[f | b_j = 1] − E[f | b_j = 0]), by enumerating {0, 1}^L."""
    f = Cubic(a, c)
    p = sigmoid(logits)
    out = np.zeros(L)
    for bits in itertools.product((0.0, 1.0), repeat=L):
        b = np.array(bits)
        q = np.prod(np.where(b > 0, p, 1.0 - p))
        out += q * f(b) * (b - p)  # E[f ∇ log q], the score identity, exact over the enumeration
    return out


ESTIMATORS = {
    "score_function": score_function,
    "leave_one_out": baselines.WithBaseline(score_function, baselines.leave_one_out()),
    "optimal": baselines.WithBaseline(score_function, baselines.optimal(pilot=4)),
    "arm": arm.arm,
    "disarm": arm.disarm,
    "rebar": relaxed.rebar,
    "measure_valued": measure_valued,
}


@pytest.mark.parametrize("name", ESTIMATORS)
def test_batched_bernoulli_estimators_are_unbiased_per_datum(name):
    family, params = Bernoulli(batch_shape=(B,)), BernoulliParams(LOGITS)
    v, n = 4000, 2
    per_sample = ESTIMATORS[name](Cubic(A, C), family, params, np.random.default_rng(11), (v, n))
    assert per_sample.shape == (v, n, B, L)
    est = per_sample.mean(axis=1)
    mean, se = est.mean(axis=0), est.std(axis=0, ddof=1) / math.sqrt(v)
    exact = np.stack([exact_bernoulli_grad(A[k], C[k], LOGITS[k]) for k in range(B)])
    assert np.all(np.abs(mean - exact) < 5 * se + 1e-12), (name, mean, exact, se)


def test_moving_average_baseline_carries_one_state_for_the_batch():
    family, params = Bernoulli(batch_shape=(B,)), BernoulliParams(LOGITS)
    wrapped = baselines.WithBaseline(score_function, baselines.moving_average(0.5))
    grads, state = wrapped(Cubic(A, C), family, params, np.random.default_rng(0), 4, state=0.0)
    assert grads.shape == (4, B, L) and np.isscalar(state)


class Replay:
    """A generator stand-in whose ``random`` returns given uniforms: what lets a batched call and
    per-datum calls see the same noise."""

    def __init__(self, u: np.ndarray) -> None:
        self.u = u

    def random(self, shape):
        assert tuple(shape) == self.u.shape, (shape, self.u.shape)
        return self.u

    def standard_normal(self, shape):
        return self.random(shape)


SAME_NOISE = {
    **{k: ESTIMATORS[k] for k in ("score_function", "leave_one_out", "arm", "disarm", "rebar", "measure_valued")},
    "gumbel_softmax": relaxed.gumbel_softmax,
    "straight_through": relaxed.straight_through,
}


@pytest.mark.parametrize("name", SAME_NOISE)
def test_a_batched_call_equals_per_datum_calls_on_the_same_noise(name):
    shape = (2, 3)
    u = np.random.default_rng(5).random((*shape, B, L))
    est = SAME_NOISE[name]
    batched = est(Cubic(A, C), Bernoulli(batch_shape=(B,)), BernoulliParams(LOGITS), Replay(u.reshape(*shape, B * L)),
                  shape)
    for k in range(B):
        alone = est(Cubic(A[k], C[k]), Bernoulli(), BernoulliParams(LOGITS[k]), Replay(u[..., k, :]), shape)
        np.testing.assert_allclose(batched[..., k, :], alone, rtol=1e-12, atol=1e-12)


class Quadratic:
    """f_n(z) = w_n‖z − m_n‖² per datum n."""

    def __init__(self, m: np.ndarray, w: np.ndarray) -> None:
        self.m, self.w = m, w

    def __call__(self, z):
        return self.w * ((z - self.m) ** 2).sum(axis=-1)

    def grad(self, z):
        return 2.0 * np.asarray(self.w)[..., None] * (z - self.m)


MEAN, SCALE = np.array([[0.5, -1.0, 0.0], [1.0, 0.2, -0.3], [0.0, 0.0, 2.0]]), np.array([[1.0, 0.5, 2.0]] * 3)
TARGET, WEIGHT = np.array([[1.0, 1.0, 1.0], [0.0, -1.0, 0.5], [2.0, 0.0, 0.0]]), np.array([1.0, 0.5, 2.0])


@pytest.mark.parametrize("estimator", [score_function, reparameterization], ids=["score_function", "pathwise"])
def test_batched_gaussian_estimators_are_unbiased_per_datum(estimator):
    family = Gaussian(learn_scale=True, batch_shape=(B,))
    v = 20000
    est = estimator(Quadratic(TARGET, WEIGHT), family, GaussianParams(MEAN, SCALE), np.random.default_rng(3), (v, 1))
    assert est.shape == (v, 1, B, 2 * L)
    est = est[:, 0]
    # E w‖z − m‖² = w(‖μ − m‖² + Σσ²): ∇_μ = 2w(μ − m), ∇_σ = 2wσ.
    exact = np.concatenate([2 * WEIGHT[:, None] * (MEAN - TARGET), 2 * WEIGHT[:, None] * SCALE], axis=-1)
    mean, se = est.mean(axis=0), est.std(axis=0, ddof=1) / math.sqrt(v)
    assert np.all(np.abs(mean - exact) < 5 * se + 1e-12)


@pytest.mark.parametrize("estimator", [score_function, reparameterization], ids=["score_function", "pathwise"])
def test_a_batched_gaussian_call_equals_per_datum_calls_on_the_same_noise(estimator):
    shape = (4,)
    eps = np.random.default_rng(9).standard_normal((*shape, B, L))
    batched = estimator(Quadratic(TARGET, WEIGHT), Gaussian(learn_scale=True, batch_shape=(B,)),
                        GaussianParams(MEAN, SCALE), Replay(eps.reshape(*shape, B * L)), shape)
    for k in range(B):
        alone = estimator(Quadratic(TARGET[k], WEIGHT[k]), Gaussian(learn_scale=True),
                          GaussianParams(MEAN[k], SCALE[k]), Replay(eps[..., k, :]), shape)
        np.testing.assert_allclose(batched[..., k, :], alone, rtol=1e-12, atol=1e-12)
