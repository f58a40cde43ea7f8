r"""The reference study's test functions: E_{x ~ N(μ, σ²)}[g(x; k)], coordinate-wise in d.

f(z) = Σ_j g(z_j; k) under q = N(μ, diag σ²), with g one of (Mohamed et al. 2020, section 3,
figure 2):

* ``square``: g = (x − k)²,  E g = (μ − k)² + σ²;
* ``exp``:    g = exp(−k x²), E g = a^{−1/2} exp(−kμ²/a), a = 1 + 2kσ²;
* ``cos``:    g = cos(k x),   E g = cos(kμ) exp(−k²σ²/2).

Exact gradients in μ and σ follow from these closed forms. Exact variances of the
estimators (independent sampling, no baseline) are computed by quadrature of
one-dimensional integrals: the coordinates are independent and f is a sum over them, so
every second moment reduces to moments of one coordinate (see :meth:`GaussianExpectation.
exact_variance`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from estimators import Gaussian, GaussianParams, spec
from problems.base import require, require_finite, require_int


class TestFunction(NamedTuple):
    """g(x; k) with its first two derivatives, and E g with its derivatives in μ and σ."""

    g: Callable
    dg: Callable
    d2g: Callable
    mean: Callable  # (μ, σ, k) -> E g
    dmean_mu: Callable
    dmean_sigma: Callable


def _exp_mean(mu, s, k):
    a = 1.0 + 2.0 * k * s * s
    return np.exp(-k * mu * mu / a) / np.sqrt(a)


def _exp_dmu(mu, s, k):
    a = 1.0 + 2.0 * k * s * s
    return _exp_mean(mu, s, k) * (-2.0 * k * mu / a)


def _exp_dsigma(mu, s, k):
    a = 1.0 + 2.0 * k * s * s
    return _exp_mean(mu, s, k) * 4.0 * k * s * (-0.5 / a + k * mu * mu / (a * a))


SQUARE = TestFunction(
    g=lambda x, k: (x - k) ** 2,
    dg=lambda x, k: 2.0 * (x - k),
    d2g=lambda x, k: np.full_like(x, 2.0),
    mean=lambda mu, s, k: (mu - k) ** 2 + s * s,
    dmean_mu=lambda mu, s, k: 2.0 * (mu - k),
    dmean_sigma=lambda mu, s, k: 2.0 * s,
)
EXP = TestFunction(
    g=lambda x, k: np.exp(-k * x * x),
    dg=lambda x, k: -2.0 * k * x * np.exp(-k * x * x),
    d2g=lambda x, k: (4.0 * k * k * x * x - 2.0 * k) * np.exp(-k * x * x),
    mean=_exp_mean,
    dmean_mu=_exp_dmu,
    dmean_sigma=_exp_dsigma,
)
COS = TestFunction(
    g=lambda x, k: np.cos(k * x),
    dg=lambda x, k: -k * np.sin(k * x),
    d2g=lambda x, k: -k * k * np.cos(k * x),
    mean=lambda mu, s, k: np.cos(k * mu) * np.exp(-0.5 * k * k * s * s),
    dmean_mu=lambda mu, s, k: -k * np.sin(k * mu) * np.exp(-0.5 * k * k * s * s),
    dmean_sigma=lambda mu, s, k: -k * k * s * np.cos(k * mu) * np.exp(-0.5 * k * k * s * s),
)
# The values `problem.f` may take (experiments.config validates them).
FUNCTIONS = {"square": SQUARE, "exp": EXP, "cos": COS}


class _Rule(NamedTuple):
    nodes: np.ndarray
    weights: np.ndarray  # Σ weights·ψ(nodes) ≈ E[ψ]


@functools.cache
def _rules(n: int = 1200, half_width: float = 13.0) -> dict[str, _Rule]:
    """Gauss–Legendre rules on truncated supports (tails beyond e^{−84} left out) for the
    expectations under N(0, 1), Rayleigh (density w e^{−w²/2}), double-sided Maxwell
    (m²φ(m)) and U(0, 1). Legendre rather than Hermite: it resolves oscillating g (cos kx)
    and the half-line densities without special weights."""
    from scipy.special import roots_legendre  # 10× faster than numpy's leggauss at this size

    x, w = roots_legendre(n)
    phi = np.exp(-0.5 * (x * half_width) ** 2) / math.sqrt(2.0 * math.pi)
    normal = _Rule(x * half_width, w * half_width * phi)
    maxwell = _Rule(normal.nodes, normal.weights * normal.nodes**2)
    r = 0.5 * half_width * (x + 1.0)
    rayleigh = _Rule(r, 0.5 * half_width * w * r * np.exp(-0.5 * r * r))
    xu, wu = roots_legendre(200)
    uniform = _Rule(0.5 * (xu + 1.0), 0.5 * wu)
    return {"normal": normal, "maxwell": maxwell, "rayleigh": rayleigh, "uniform": uniform}


def _f_t2(h: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per coordinate E[f t(ε_j)²] with f = Σ_i h_i(ε_i): E[h_j t²] + E[A]E[t²], A = Σ_{i≠j} h_i."""
    w = _rules()["normal"].weights
    eh = h @ w
    return (h * t * t) @ w + (eh.sum() - eh) * (t * t @ w)


def _sf_variance(h: np.ndarray, t: np.ndarray, sigma: np.ndarray, oracle: bool = False) -> np.ndarray:
    r"""Per-coordinate Var[(Σ_i h_i(ε_i) − b_j)·t(ε_j)/σ_j] for independent ε_i ~ N(0, 1), with
    b_j = 0, or with ``oracle`` the optimal constant b*_j = E[f t²]/E[t²].

    ``h`` (d, n) holds h_i at the normal rule's nodes, ``t`` (n,) the score's shape. With
    A = Σ_{i≠j} h_i, independent of ε_j, and E t = 0:
    E[(h_j + A)² t²] = E[h_j² t²] + 2E[h_j t²]E[A] + E[A²]E[t²], E[(h_j + A) t] = E[h_j t];
    a constant b changes the second moment by −2b E[f t²] + b² E[t²], at b* by −E[f t²]²/E[t²].
    """
    w = _rules()["normal"].weights
    eh, vh = h @ w, (h * h) @ w - (h @ w) ** 2
    a1 = eh.sum() - eh
    a2 = vh.sum() - vh + a1 * a1
    second = (h * h * t * t) @ w + 2.0 * (h * t * t) @ w * a1 + a2 * (t * t @ w)
    if oracle:
        second = second - _f_t2(h, t) ** 2 / (t * t @ w)
    return (second - ((h * t) @ w) ** 2) / sigma**2


@dataclass(frozen=True)
class GaussianExpectation:
    r"""f(z) = Σ_j g(z_j; k), q = N(μ, diag σ²), μ₀ = ``mu0``·1, σ₀ = ``sigma0``.

    ``optimum`` is the mean minimising L at fixed σ where there is one: k·1 for ``square``,
    the minimiser (2m + 1)π/k of cos(kμ) nearest to μ₀ for ``cos``; ``exp`` has none (L
    decreases as |μ| → ∞, and cos with k = 0 is constant): then ``optimum`` is None, a run
    logs no distances and the divergence bound is measured from θ₀.
    """

    f: str = "square"
    k: float = 1.0
    dim: int = 1
    mu0: float = 1.0
    sigma0: float = 1.0
    family = Gaussian()

    def __post_init__(self) -> None:
        require(self.f in FUNCTIONS, "f", self.f, f"one of {', '.join(FUNCTIONS)}")
        require_finite(self, "k", "mu0", "sigma0")
        require(self.sigma0 > 0, "sigma0", self.sigma0, "a finite number > 0")
        require_int(self, "dim", 1)
        if self.f == "exp" and self.k < 0:
            raise ValueError(f"invalid problem.k={self.k!r} with problem.f=exp: allowed: a finite number >= 0 "
                             "(E exp(−k x²) under N(μ, σ²) is finite only while 2|k|σ² < 1)")

    @property
    def formula(self) -> str:
        """f per coordinate, as the report titles it (k left as a symbol: a study sweeps it)."""
        return "f(x) = " + {"square": "(x − k)²", "exp": "exp(−k x²)", "cos": "cos(k x)"}[self.f]

    @property
    def fn(self) -> TestFunction:
        return FUNCTIONS[self.f]

    @property
    def params0(self) -> GaussianParams:
        return GaussianParams(np.full(self.dim, float(self.mu0)), self.sigma0)

    @functools.cached_property
    def optimum(self) -> np.ndarray | None:
        if self.f == "square":
            return np.full(self.dim, float(self.k))
        if self.f == "cos" and self.k != 0:
            k = abs(self.k)  # cos is even in k
            m = np.round((k * self.mu0 / math.pi - 1.0) / 2.0)
            return np.full(self.dim, (2.0 * m + 1.0) * math.pi / k)
        return None

    @property
    def distance(self) -> float:
        return math.nan if self.optimum is None else float(np.linalg.norm(self.optimum - self.params0.mean))

    @property
    def length_scale(self) -> float:
        """Length unit of the divergence bound: ‖x − θ₀‖ (0 without an optimum) + σ₀√d."""
        return (0.0 if self.optimum is None else self.distance) + self.sigma0 * math.sqrt(self.dim)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.fn.g(z, self.k).sum(axis=-1)

    def grad(self, z: np.ndarray) -> np.ndarray:
        return self.fn.dg(z, self.k)

    def hessian(self, z: np.ndarray) -> np.ndarray:
        return self.fn.d2g(z, self.k)[..., None] * np.eye(self.dim)

    def _scale(self, scale) -> np.ndarray:
        return np.broadcast_to(np.asarray(scale, dtype=float), (self.dim,))

    def loss(self, params: GaussianParams) -> float:
        return float(np.sum(self.fn.mean(params.mean, self._scale(params.scale), self.k)))

    def exact_grad(self, params: GaussianParams) -> GaussianParams:
        sigma = self._scale(params.scale)
        return GaussianParams(self.fn.dmean_mu(params.mean, sigma, self.k),
                              self.fn.dmean_sigma(params.mean, sigma, self.k))

    def exact_variance(self, config, family, params: GaussianParams, samples: int) -> dict[str, float]:
        r"""Exact trace of the covariance per block, by quadrature; {} where not derived.

        Known for independent sampling: the score function (also with the delta-method
        control variate: its residual f − h is again a sum over coordinates; and with the
        oracle baseline b*, :meth:`optimal_baseline`), the pathwise estimator, and the
        measure-valued one with and without coupling. With
        c = 1/(σ_j√(2π)), D_W = g(μ_j + σ_jW) − g(μ_j − σ_jW), V = Σ_i Var g(z_i):

        * measure-valued mean, coupled: c²E[D_W²] − (∂_μ L)² (the background cancels);
          uncoupled: c²(Var g(μ_j + σ_jW) + Var g(μ_j − σ_jW) + 2(V − Var g(z_j))).
        * measure-valued scale, coupled: E[(g(μ_j + σ_jM) − g(μ_j + σ_jMU))²]/σ_j² − (∂_σ L)²;
          uncoupled: (Var g(μ_j + σ_jM) + 2V − Var g(z_j))/σ_j².
        """
        form = _DERIVED.get(config)
        if form is None:
            return {}
        per = form(self, np.asarray(params.mean, dtype=float), self._scale(params.scale))
        return {name: float(np.sum(per[name])) / samples for name in family.learned}

    def optimal_baseline(self, family, params: GaussianParams) -> np.ndarray:
        r"""b*_j = E[f s_j²]/E[s_j²] per learned coordinate, by quadrature: the constant baseline of
        least variance (Mohamed et al. 2020, section 7.4.2). Mean: s_j = ε_j/σ_j, so
        b*_j = E[f ε_j²]; scale: s_j = (ε_j² − 1)/σ_j, b*_j = E[f (ε_j² − 1)²]/2."""
        mu, sigma = np.asarray(params.mean, dtype=float), self._scale(params.scale)
        x = _rules()["normal"].nodes
        h = self.fn.g(mu[:, None] + sigma[:, None] * x, self.k)
        w = _rules()["normal"].weights
        parts = [_f_t2(h, x) / (x * x @ w)]
        if "scale" in family.learned:
            t = x * x - 1.0
            parts.append(_f_t2(h, t) / (t * t @ w))
        return np.concatenate(parts)

    def _blocks(self, func: str, opts: dict, mu: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
        """Per-coordinate one-sample variances of both blocks, for the estimator ``func``."""
        rules = _rules()
        fn, k = self.fn, self.k
        x = rules["normal"].nodes
        z = mu[:, None] + sigma[:, None] * x  # (d, n)
        h = fn.g(z, k)

        def expect(rule, values):
            return values @ rule.weights

        per = {}
        if func == "score_function":
            if opts.get("control_variate") == "delta":
                # The delta control variate: residual of the second-order expansion at μ.
                ex = sigma[:, None] * x
                h = h - (fn.g(mu, k)[:, None] + fn.dg(mu, k)[:, None] * ex + 0.5 * fn.d2g(mu, k)[:, None] * ex**2)
            oracle = opts.get("baseline") == "oracle"
            per["mean"] = _sf_variance(h, x, sigma, oracle)
            per["scale"] = _sf_variance(h, x * x - 1.0, sigma, oracle)
        elif func == "reparameterization":
            dg = fn.dg(z, k)
            per["mean"] = expect(rules["normal"], dg**2) - expect(rules["normal"], dg) ** 2
            per["scale"] = expect(rules["normal"], (dg * x) ** 2) - expect(rules["normal"], dg * x) ** 2
        else:
            vh = expect(rules["normal"], h * h) - expect(rules["normal"], h) ** 2
            c2 = 1.0 / (2.0 * math.pi * sigma**2)
            w = rules["rayleigh"].nodes
            gp, gm = fn.g(mu[:, None] + sigma[:, None] * w, k), fn.g(mu[:, None] - sigma[:, None] * w, k)
            m = rules["maxwell"].nodes
            gM = fn.g(mu[:, None] + sigma[:, None] * m, k)
            if opts.get("coupling", True):
                per["mean"] = c2 * expect(rules["rayleigh"], (gp - gm) ** 2) - fn.dmean_mu(mu, sigma, k) ** 2
                u = rules["uniform"]
                gMU = fn.g(mu[:, None, None] + sigma[:, None, None] * m[:, None] * u.nodes, k)  # (d, n, nu)
                d2 = expect(rules["maxwell"], ((gM[:, :, None] - gMU) ** 2) @ u.weights)
                per["scale"] = d2 / sigma**2 - fn.dmean_sigma(mu, sigma, k) ** 2
            else:
                var_p = expect(rules["rayleigh"], gp**2) - expect(rules["rayleigh"], gp) ** 2
                var_m = expect(rules["rayleigh"], gm**2) - expect(rules["rayleigh"], gm) ** 2
                per["mean"] = c2 * (var_p + var_m + 2.0 * (vh.sum() - vh))
                var_M = expect(rules["maxwell"], gM**2) - expect(rules["maxwell"], gM) ** 2
                per["scale"] = (var_M + 2.0 * vh.sum() - vh) / sigma**2
        return per


def _form(func: str, **opts):
    return lambda problem, mu, sigma: problem._blocks(func, opts, mu, sigma)


# The configurations the quadratures above were derived for, and no other.
_DERIVED = {
    spec("score_function"): _form("score_function"),
    spec("score_function", control_variate="delta"): _form("score_function", control_variate="delta"),
    spec("score_function", baseline="oracle"): _form("score_function", baseline="oracle"),
    spec("reparameterization"): _form("reparameterization"),
    spec("measure_valued", coupling=True): _form("measure_valued", coupling=True),
    spec("measure_valued", coupling=False): _form("measure_valued", coupling=False),
}
