"""Relaxation estimators (Gumbel-softmax, straight-through, REBAR) and the families' relaxations.

Truths come from outside the code under test: one-dimensional quadrature over the uniform
noise u (scipy.integrate.quad) for the relaxed estimators on the separable Bernoulli toy,
enumeration over {0, 1}^d or the K^d outcomes of the categoricals for the unbiased ones,
central differences for the Jacobians. Monte Carlo checks hold to 5 standard errors.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
from scipy.integrate import quad

import estimators
import estimators.relaxed
from estimators import Bernoulli, BernoulliParams, Gaussian, baselines, sampling
from estimators.families import Categorical, CategoricalParams, Relaxable
from experiments.sgd import run_sgd
from problems.bernoulli_toy import BernoulliToy
from problems.categorical_toy import CategoricalToy
from tests.estimators.checks import Z, assert_unbiased, family_estimates

GS = estimators.relaxed.gumbel_softmax
ST = estimators.relaxed.straight_through
REBAR = estimators.relaxed.rebar
SF = estimators.score_function
SCHEMES = [sampling.independent, sampling.antithetic, sampling.qmc]
LOGITS = np.array([-1.3, 0.2, 2.1])
T = 0.45


def with_options(estimator, scheme=sampling.independent, **options):
    return estimators.configure(functools.partial(estimator, **options), sampling=scheme)


# --- Truths by quadrature over u, per coordinate of f(b) = Σ_j (b_j − t)².


def relaxed_by_hand(phi: float, tau: float, u: float) -> float:
    """z̃ = σ((φ + log(1 − u) − log u)/τ): the binary Concrete sample whose hard value is 1[u < σ(φ)]."""
    return 1.0 / (1.0 + math.exp(-(phi + math.log1p(-u) - math.log(u)) / tau))


def quadrature_moments(phi: float, tau: float, straight: bool) -> tuple[float, float]:
    """E ĝ_j and E ĝ_j² of one coordinate, ĝ_j = 2(y − t)·z̃(1 − z̃)/τ with y = z̃ (Gumbel-softmax)
    or y = 1[u < p] (straight-through), integrated over u ∈ (0, 1) with the break at u = p."""
    p = 1.0 / (1.0 + math.exp(-phi))

    def g(u):
        z = relaxed_by_hand(phi, tau, u)
        y = float(u < p) if straight else z
        return 2.0 * (y - T) * z * (1.0 - z) / tau

    opts = {"points": [p], "limit": 200, "epsabs": 1e-13, "epsrel": 1e-11}
    return quad(g, 0.0, 1.0, **opts)[0], quad(lambda u: g(u) ** 2, 0.0, 1.0, **opts)[0]


def quadrature_truth(logits, tau: float, straight: bool):
    """E ĝ (per coordinate), tr Cov ĝ of one sample, and ‖E ĝ − ∇L‖², ∇L_j = (1 − 2t)p_j(1 − p_j)."""
    moments = np.array([quadrature_moments(phi, tau, straight) for phi in logits])
    mean, second = moments[:, 0], moments[:, 1]
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits)))
    grad = (1.0 - 2.0 * T) * p * (1.0 - p)
    return mean, float(np.sum(second - mean**2)), float(np.sum((mean - grad) ** 2))


# --- The relaxations: hard value, and Jacobian against central differences.


@pytest.mark.parametrize("tau", [0.05, 0.5, 3.0])
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.__name__)
def test_the_hard_value_of_the_relaxed_sample_is_the_sample(scheme, tau):
    rng = np.random.default_rng(3)
    bern, bparams = Bernoulli(), BernoulliParams(LOGITS)
    u = bern.noise(scheme, rng, (2000, 4), bparams)
    np.testing.assert_array_equal(bern.relax(bparams, u, tau) > 0.5, bern.sample(bparams, u) > 0.5)
    cat, cparams = Categorical(3), CategoricalParams(rng.standard_normal((2, 3)) * 2.0)
    u = cat.noise(scheme, rng, (2000, 4), cparams)
    relaxed, hard = cat.relax(cparams, u, tau), cat.sample(cparams, u)
    assert relaxed.shape == hard.shape == (2000, 4, 2, 3)
    np.testing.assert_allclose(relaxed.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(relaxed.argmax(axis=-1), hard.argmax(axis=-1))
    assert np.all(hard.sum(axis=-1) == 1.0)


def central_vjp(family, params, eps, tau, v, h=1e-6):
    """vᵀ ∂z̃/∂φ by central differences of ``family.relax`` in each logit."""
    phi = np.asarray(params.logits, dtype=float)
    out = np.empty((*eps.shape[:-1], phi.size))
    for i in range(phi.size):
        e = np.zeros(phi.size)
        e[i] = h
        up = family.relax(params._replace(logits=(phi.ravel() + e).reshape(phi.shape)), eps, tau)
        down = family.relax(params._replace(logits=(phi.ravel() - e).reshape(phi.shape)), eps, tau)
        axes = tuple(range(eps.ndim - 1, up.ndim))
        out[..., i] = np.sum(v * (up - down), axis=axes) / (2 * h)
    return out


@pytest.mark.parametrize("tau", [0.3, 1.0, 2.5])
def test_the_relaxed_vector_jacobian_products_match_central_differences(tau):
    rng = np.random.default_rng(4)
    bern, bparams = Bernoulli(), BernoulliParams(LOGITS)
    u = rng.uniform(0.05, 0.95, (50, 3))
    v = rng.standard_normal((50, 3))
    np.testing.assert_allclose(bern.relaxed_pathwise(bparams, bern.relax(bparams, u, tau), tau, v),
                               central_vjp(bern, bparams, u, tau, v), rtol=1e-6, atol=1e-9)
    cat, cparams = Categorical(4), CategoricalParams(rng.standard_normal((3, 4)))
    u = rng.uniform(0.05, 0.95, (50, 12))
    v = rng.standard_normal((50, 3, 4))
    np.testing.assert_allclose(cat.relaxed_pathwise(cparams, cat.relax(cparams, u, tau), tau, v),
                               central_vjp(cat, cparams, u, tau, v), rtol=1e-6, atol=1e-9)


def test_the_categorical_reads_flat_logits_row_by_row():
    rng = np.random.default_rng(5)
    cat, phi = Categorical(3), rng.standard_normal((2, 3))
    u = rng.random((10, 6))
    flat, square = CategoricalParams(phi.ravel()), CategoricalParams(phi)
    np.testing.assert_array_equal(cat.sample(flat, u), cat.sample(square, u))
    np.testing.assert_array_equal(cat.relax(flat, u, 0.7), cat.relax(square, u, 0.7))
    z = cat.sample(flat, u)
    np.testing.assert_array_equal(cat.score(flat, z, u), cat.score(square, z, u))
    assert cat.score(flat, z, u).shape == (10, 6)


# --- Gumbel-softmax and straight-through on the Bernoulli toy, against quadrature.


@pytest.mark.parametrize("straight", [False, True], ids=["gumbel_softmax", "straight_through"])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_relaxed_means_match_quadrature_and_the_exact_bias(tau, straight):
    problem, params = BernoulliToy(dim=3), BernoulliParams(LOGITS)
    estimator = with_options(ST if straight else GS, temperature=tau)
    mean, _, bias_sq = quadrature_truth(LOGITS, tau, straight)
    est = family_estimates(estimator, problem, problem.family, params, samples=4, replicates=50_000, seed=6)
    assert_unbiased(est, mean)
    assert problem.exact_bias(estimators.describe(estimator), problem.family, params) == pytest.approx(
        bias_sq, rel=1e-7, abs=1e-15)
    assert bias_sq > 1e-6  # biased: the check above is not of an unbiased estimator


def test_gumbel_softmax_trades_bias_for_variance_as_the_temperature_falls():
    """At the toy's default (d = 1, φ = 0, t = 0.45), exact values: bias² falls and the variance
    grows as τ goes 2 → 1 → 0.5 → 0.1. (Away from φ = 0 the bias is not monotone in τ: at φ = 1 it
    peaks near τ = 0.5; it vanishes only as τ → 0.)"""
    problem = BernoulliToy()
    params = problem.params0
    taus = [2.0, 1.0, 0.5, 0.1]
    truths = [quadrature_truth(params.logits, tau, straight=False) for tau in taus]
    exact = [problem.exact_bias(estimators.spec("gumbel_softmax", temperature=tau), problem.family, params)
             for tau in taus]
    np.testing.assert_allclose(exact, [b for _, _, b in truths], rtol=1e-7, atol=1e-15)
    assert all(a > b for a, b in itertools.pairwise(exact)), exact
    variances = [v for _, v, _ in truths]
    assert all(a < b for a, b in itertools.pairwise(variances)), variances
    # The variance by quadrature is the variance of the estimator itself, at one temperature.
    est = GS(problem, problem.family, params, np.random.default_rng(7), (200_000, 1), temperature=0.5)[:, 0]
    sq = ((est - est.mean(axis=0)) ** 2).sum(axis=1) * len(est) / (len(est) - 1)
    assert abs(sq.mean() - variances[2]) < Z * sq.std(ddof=1) / math.sqrt(len(sq))


def test_no_exact_bias_for_configurations_not_derived():
    problem, params = BernoulliToy(dim=3), BernoulliParams(LOGITS)
    for config in (estimators.spec("gumbel_softmax", temperature=1.0, sampling="antithetic"),
                   estimators.spec("gumbel_softmax", temperature=1.0, extra=1),
                   estimators.spec("gumbel_softmax"),  # no temperature
                   estimators.spec("gumbel_softmax", temperature=0.0),
                   estimators.describe(REBAR),
                   estimators.describe(SF)):
        assert problem.exact_bias(config, problem.family, params) is None
    derived = estimators.describe(with_options(ST, temperature=2))
    assert problem.exact_bias(derived, problem.family, params) > 0


def test_the_loop_logs_the_exact_bias_and_the_probe_agrees():
    problem = BernoulliToy(dim=2, logit0=1.0)
    result = run_sgd(problem, GS, step_size=0.2, steps=20, samples=2, seed=0, variance_samples=20_000,
                     log_points=3, tolerance=0.05, divergence_factor=100.0)
    c = result.curves
    assert np.all(c["grad_bias_sq_exact"] > 1e-4), c["grad_bias_sq_exact"]
    np.testing.assert_array_less(np.abs(c["grad_bias_sq"] - c["grad_bias_sq_exact"]), Z * c["grad_bias_sq_se"])
    assert result.summary["diverged"] == 0.0


# --- REBAR: unbiased, and where it reduces the variance.


class Interacting:
    """f(b) = Σ_j (b_j − t)² + 2b₁b₂ − 1.5b₂b₃ + b₁b₂b₃ on [0, 1]³, with its gradient."""

    def __call__(self, b):
        b1, b2, b3 = b[..., 0], b[..., 1], b[..., 2]
        return ((b - T) ** 2).sum(axis=-1) + 2.0 * b1 * b2 - 1.5 * b2 * b3 + b1 * b2 * b3

    def grad(self, b):
        b1, b2, b3 = b[..., 0], b[..., 1], b[..., 2]
        return 2.0 * (b - T) + np.stack([2.0 * b2 + b2 * b3, 2.0 * b1 - 1.5 * b3 + b1 * b3,
                                         -1.5 * b2 + b1 * b2], axis=-1)


def enumerated_grad(f, logits) -> np.ndarray:
    """∂/∂φ Σ_b q(b) f(b) = Σ_b q(b) f(b)(b − p) over {0, 1}^d."""
    p = 1.0 / (1.0 + np.exp(-logits))
    grad = np.zeros(logits.size)
    for b in itertools.product((0.0, 1.0), repeat=logits.size):
        b = np.array(b)
        grad += float(np.prod(np.where(b == 1.0, p, 1.0 - p))) * float(f(b)) * (b - p)
    return grad


@pytest.mark.parametrize("f", [BernoulliToy(dim=3), Interacting()], ids=["toy", "interacting"])
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.__name__)
@pytest.mark.parametrize("lam, eta", [(0.5, 1.0), (2.0, -0.7)])
def test_rebar_is_unbiased_against_enumeration(lam, eta, scheme, f):
    estimator = with_options(REBAR, scheme, temperature=lam, eta=eta)
    est = family_estimates(estimator, f, Bernoulli(), BernoulliParams(LOGITS), samples=4, replicates=40_000, seed=8)
    assert_unbiased(est, enumerated_grad(f, LOGITS))


def test_rebar_is_not_marked_biased_and_the_relaxations_are():
    assert not estimators.biased(REBAR)
    assert estimators.biased(GS) and estimators.biased(with_options(ST, temperature=0.3))


def test_rebar_beats_the_score_function_at_the_toys_default_with_a_wide_relaxation():
    """At φ = 0, t = 0.45 the score function's variance comes from f's offset (f ≈ 0.25 at both b);
    with λ = 50 and η = 100, η f(σ_λ(z̃)) ≈ 0.25 + 0.05 z̃ + … acts as that offset, and the variance
    falls about twelvefold. (At the defaults λ = 0.5, η = 1 it is above the score function's here.)"""
    problem = BernoulliToy()
    params = problem.params0
    sf = problem.exact_variance(estimators.describe(SF), problem.family, params, 1)["logits"]
    est = REBAR(problem, problem.family, params, np.random.default_rng(9), (200_000, 1),
                temperature=50.0, eta=100.0)[:, 0]
    sq = ((est - problem.exact_grad(params).logits) ** 2).sum(axis=1)
    assert sq.mean() + Z * sq.std(ddof=1) / math.sqrt(len(sq)) < sf / 5, (sq.mean(), sf)


# --- The categorical family under the score function and its baselines.


def enumerate_categoricals(logits: np.ndarray):
    """Every one-hot z over d rows of K classes, with its probability Π_j softmax(φ_j)_{k_j}."""
    d, k = logits.shape
    pi = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    for classes in itertools.product(range(k), repeat=d):
        z = np.zeros((d, k))
        z[np.arange(d), classes] = 1.0
        yield z, float(np.prod(pi[np.arange(d), classes])), pi


def categorical_grad(f, logits: np.ndarray) -> np.ndarray:
    """Σ_z q(z) f(z)(z − π), flat, by enumeration."""
    return sum(q * float(f(z)) * (z - pi) for z, q, pi in enumerate_categoricals(logits)).ravel()


def cross(z):
    """A categorical integrand whose rows interact: f(z) = c·z₁ + z₁ᵀ A z₂."""
    a = np.array([[1.0, -2.0, 0.5], [0.0, 1.5, -1.0], [2.0, 0.3, 0.0]])
    return z[..., 0, :] @ np.array([0.3, -0.2, 1.1]) + np.einsum("...k,kl,...l->...", z[..., 0, :], a, z[..., 1, :])


CAT_LOGITS = np.array([[0.4, -1.0, 0.9], [-0.3, 0.0, 1.2]])
CAT_ESTIMATORS = {
    "plain": lambda scheme: estimators.configure(SF, sampling=scheme),
    "leave_one_out": lambda scheme: baselines.leave_one_out().wrap(estimators.configure(SF, sampling=scheme)),
    "optimal": lambda scheme: baselines.optimal(20).wrap(estimators.configure(SF, sampling=scheme)),
}
CAT_CASES = [(name, scheme) for name in CAT_ESTIMATORS for scheme in SCHEMES
             if name != "leave_one_out" or scheme is sampling.independent]


@pytest.mark.parametrize("f", [CategoricalToy(dim=2, classes=3), cross], ids=["toy", "cross"])
@pytest.mark.parametrize("name, scheme", CAT_CASES, ids=lambda x: getattr(x, "__name__", x))
def test_score_function_is_unbiased_on_categoricals(name, scheme, f):
    estimator = CAT_ESTIMATORS[name](scheme)
    est = family_estimates(estimator, f, Categorical(3), CategoricalParams(CAT_LOGITS.ravel()), samples=4,
                           replicates=20_000, seed=10)
    assert est.shape == (20_000, 6)
    assert_unbiased(est, categorical_grad(f, CAT_LOGITS))


@pytest.mark.parametrize("estimator", [GS, ST], ids=["gumbel_softmax", "straight_through"])
def test_relaxed_estimators_run_on_the_categorical_toy(estimator):
    problem = CategoricalToy(dim=2, classes=3)
    result = run_sgd(problem, estimator, step_size=0.5, steps=100, samples=4, seed=0, variance_samples=500,
                     log_points=3, tolerance=0.05, divergence_factor=100.0)
    assert result.trajectory.shape == (101, 6) and result.summary["diverged"] == 0.0
    assert result.curves["loss"][-1] < result.curves["loss"][0]
    assert np.all(np.isfinite(result.curves["grad_bias_sq"]))
    assert np.isnan(result.curves["grad_bias_sq_exact"]).all()  # biased, and nobody derived it here


# --- Where they apply, and their options.


class NoGradient:
    def __call__(self, b):
        return b.sum(axis=-1)


def test_refusals():
    for estimator in (GS, ST, REBAR):
        with pytest.raises(estimators.Inapplicable, match="continuous relaxation") as err:
            estimators.check(estimator, Gaussian())
        assert "gaussian" in str(err.value)
        with pytest.raises(estimators.Inapplicable, match="gradient of f"):
            estimators.check(estimator, Bernoulli(), f=NoGradient())
        estimators.check(estimator, Bernoulli(), f=BernoulliToy())
    with pytest.raises(estimators.Inapplicable, match="bernoulli family only, not categorical"):
        estimators.check(REBAR, Categorical(4))
    estimators.check(GS, Categorical(4), f=CategoricalToy())
    with pytest.raises(estimators.Inapplicable, match="score function"):
        estimators.check(baselines.optimal().wrap(GS), Bernoulli())
    assert isinstance(Bernoulli(), Relaxable) and isinstance(Categorical(2), Relaxable)
    assert not isinstance(Gaussian(), Relaxable)


@pytest.mark.parametrize("estimator", [GS, ST, REBAR], ids=lambda e: e.__name__)
@pytest.mark.parametrize("tau", [0, -1.0, math.inf, math.nan, True, "1"])
def test_a_temperature_outside_its_range_is_refused_by_key(estimator, tau):
    problem = BernoulliToy()
    with pytest.raises(ValueError, match=r"^invalid estimator\.temperature=.*: allowed: a finite number > 0$"):
        estimator(problem, problem.family, problem.params0, np.random.default_rng(0), 2, temperature=tau)


def test_rebars_eta_must_be_finite():
    problem = BernoulliToy()
    with pytest.raises(ValueError, match=r"^invalid estimator\.eta=inf: allowed: a finite number$"):
        REBAR(problem, problem.family, problem.params0, np.random.default_rng(0), 2, eta=math.inf)
    # η = 0 is the plain score function, sample for sample.
    sf = SF(problem, problem.family, problem.params0, np.random.default_rng(1), 50)
    np.testing.assert_allclose(REBAR(problem, problem.family, problem.params0, np.random.default_rng(1), 50, eta=0),
                               sf, rtol=1e-15)


def test_the_configurations_name_their_temperature():
    assert estimators.describe(GS) == estimators.spec("gumbel_softmax", temperature=1.0)
    assert estimators.describe(with_options(ST, sampling.qmc, temperature=0.2)) == estimators.spec(
        "straight_through", temperature=0.2, sampling="qmc")
    assert estimators.describe(REBAR) == estimators.spec("rebar", temperature=0.5, eta=1.0)


@pytest.mark.parametrize("option", ["gumbel_softmax", "straight_through", "rebar"])
def test_each_yaml_composes_and_validates_on_the_bernoulli_toy(compose_config, option):
    from experiments.config import build, validate

    cfg = compose_config("problem=bernoulli_toy", f"estimator={option}")
    validate(cfg)
    estimator = build(cfg.estimator)
    assert estimators.core(estimator).__name__ == option
