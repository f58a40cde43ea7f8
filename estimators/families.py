r"""Distribution families q_θ: what the estimators need to know about the distribution.

A family is an object with named parameter blocks, some of them learned, and a parameter
value is a NamedTuple with one field per block (:class:`GaussianParams`: ``mean``,
``scale``; :class:`BernoulliParams`: ``logits``). A gradient is the concatenation of its
learned blocks, in ``blocks`` order. Every family provides (the :class:`Family` protocol):

* ``noise(sampling, rng, shape, params)``: its base noise ε, drawn by a sampling scheme
  (:mod:`estimators.sampling`) from the family's base distribution (``base``: standard
  ``"normal"`` or ``"uniform"``); ``schemes`` names the schemes that keep it exact;
* ``sample(params, eps)``: z, a deterministic function of ε;
* ``score(params, z, eps)``: ∇_θ log q(z) for the learned blocks.

And, where the maths exists (the optional protocols, checked by the estimators that need them):

* :class:`Reparameterizable`, ``pathwise(params, eps, grad)``: ∇f(z)ᵀ ∂z/∂θ, the vector–
  Jacobian product of z = g(θ, ε), from ∇f(z) (an explicit g, or an implicit one);
* :class:`WeakDifferentiable`, ``weak_derivative(params, rng, shape, sampling, coupling)``:
  the decomposition ∂_θ q = (q⁺ − q⁻)/c per learned coordinate, as points of q⁺ and q⁻.

Reference: Mohamed, Rosca, Figurnov, Mnih, "Monte Carlo Gradient Estimation in Machine
Learning", JMLR 21(132), 2020, sections 4 (score), 5 (pathwise) and 6 (measure-valued).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

import numpy as np
from scipy.special import erfc, gammainccinv, log_ndtr, ndtr

from estimators.sampling import Sampler, independent


@runtime_checkable
class Family(Protocol):
    name: str
    blocks: tuple[str, ...]
    base: str  # what a sampling scheme draws: "normal" (N(0, 1)) or "uniform" (U(0, 1))
    schemes: tuple[str, ...]  # sampling schemes under which each sample stays exactly q

    @property
    def learned(self) -> tuple[str, ...]: ...

    def noise(self, sampling: Sampler, rng: np.random.Generator, shape: tuple[int, ...], params) -> np.ndarray: ...

    def sample(self, params, eps: np.ndarray) -> np.ndarray: ...

    def score(self, params, z: np.ndarray, eps: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Reparameterizable(Protocol):
    """a reparameterization z = g(θ, ε) with ∂z/∂θ"""

    def pathwise(self, params, eps: np.ndarray, grad: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class WeakDifferentiable(Protocol):
    """a weak-derivative decomposition ∂_θ q = (q⁺ − q⁻)/c"""

    def weak_derivative(self, params, rng, shape, sampling, coupling: bool) -> list[WeakTerm]: ...


class WeakTerm(NamedTuple):
    """One learned block's weak derivative: ∂_θj E f = (E f(plus_j) − E f(minus_j)) / divisor_j.

    ``plus`` (..., k, d) holds one point per coordinate j of the block; ``minus`` the same
    shape, or (..., 1, d) when q⁻ is the same for every coordinate; ``divisor`` (k,).
    """

    plus: np.ndarray
    minus: np.ndarray
    divisor: np.ndarray


# --- Parameters as flat vectors (what an optimizer updates) and back.


def _block(params, block: str) -> np.ndarray:
    """A block as a flat float array; a scalar (a σ shared by every coordinate) has d entries."""
    value = np.asarray(getattr(params, block), dtype=np.float64)
    return np.broadcast_to(value, np.shape(params[0])).ravel() if value.ndim == 0 else value.ravel()


def flatten(family: Family, params) -> np.ndarray:
    """The learned blocks of ``params``, concatenated in ``blocks`` order (a copy)."""
    parts = [_block(params, b) for b in family.learned]
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()


def unflatten(family: Family, theta: np.ndarray, params0):
    """``params0`` with its learned blocks taken from the flat ``theta`` (views into it)."""
    learned = family.learned
    if len(learned) == 1:  # the common case, kept lean: it runs at every step
        return params0._replace(**{learned[0]: theta})
    values = {block: theta[s] for block, s in block_slices(family, params0).items()}
    return params0._replace(**values)


def block_slices(family: Family, params) -> dict[str, slice]:
    """Where each learned block lies in a flat gradient."""
    out, start = {}, 0
    for block in family.learned:
        n = _block(params, block).size
        out[block] = slice(start, start + n)
        start += n
    return out


def dim(params) -> int:
    """d: the size of the first block (the location, or the logits)."""
    return int(np.shape(params[0])[-1])


# --- Gaussian.


class GaussianParams(NamedTuple):
    mean: np.ndarray  # (d,)
    scale: Any  # σ: a float (shared by every coordinate) or an array (d,)


def _location_scale(mean, scale, eps: np.ndarray) -> np.ndarray:
    """z = μ + σε, in σε's memory when μ broadcasts into it (same values, one array fewer)."""
    z = scale * eps
    try:
        z += mean
    except ValueError:  # μ has more axes than σε: numpy refuses before writing anything
        return mean + scale * eps
    return z


def rayleigh(n: np.ndarray) -> np.ndarray:
    """Weibull(2, √2) variates from standard normals n, monotone in n (inverse CDF of Φ(n))."""
    return np.sqrt(-2.0 * log_ndtr(-n))


def double_sided_maxwell(n: np.ndarray) -> np.ndarray:
    """Double-sided Maxwell variates (density m²φ(m)) from standard normals n: P(|M| > m) = P(|N| > |n|)."""
    # The tail probability underflows beyond |n| ≈ 38; the floor keeps M finite there.
    tail = np.maximum(erfc(np.abs(n) / math.sqrt(2.0)), np.finfo(float).tiny)
    return np.sign(n) * np.sqrt(2.0 * gammainccinv(1.5, tail))


def _replace_diagonal(background: np.ndarray, coordinate: np.ndarray) -> np.ndarray:
    """(..., d, d): row j is ``background`` with coordinate j set to ``coordinate[..., j]``."""
    d = background.shape[-1]
    return np.where(np.eye(d, dtype=bool), coordinate[..., None, :], background[..., None, :])


@dataclass(frozen=True)
class Gaussian:
    r"""q = N(μ, diag σ²) on R^d; blocks ``mean`` (μ) and ``scale`` (σ, per coordinate).

    The scale is learned only with ``learn_scale``; otherwise it is held where it is (a
    float shared by every coordinate, or an array). Base noise ε ~ N(0, I), z = μ + σε.

    * score: ∇_μ log q = ε/σ, ∂_σj log q = (ε_j² − 1)/σ_j;
    * pathwise: ∂z/∂μ = I, ∂z_j/∂σ_j = ε_j, so ∇f(z) and ∇f(z) ⊙ ε;
    * weak derivative, coordinate j: mean, c = σ_j√(2π), z_j = μ_j ± σ_jW with W ~ Weibull(2, √2)
      (Rayleigh); scale, c = σ_j, q⁺ puts μ_j + σ_jM (M double-sided Maxwell) and q⁻ is q itself.
      With ``coupling`` the parts share their random numbers (the background ε, W; for the
      scale q⁻ takes M·U with U ~ U(0, 1), which is N(0, 1)).

    Reference: Mohamed et al. (2020), sections 4.1, 5.1 and 6 (table 1), 7.3 (coupling).
    """

    learn_scale: bool = False
    name: ClassVar[str] = "gaussian"
    blocks: ClassVar[tuple[str, ...]] = ("mean", "scale")
    base: ClassVar[str] = "normal"
    schemes: ClassVar[tuple[str, ...]] = ("independent", "antithetic", "qmc")
    Params: ClassVar[type] = GaussianParams

    @property
    def learned(self) -> tuple[str, ...]:
        return self.blocks if self.learn_scale else ("mean",)

    def noise(self, sampling, rng, shape, params) -> np.ndarray:
        return sampling(rng, shape, dim(params))

    def sample(self, params: GaussianParams, eps: np.ndarray) -> np.ndarray:
        return _location_scale(params.mean, params.scale, eps)

    def score(self, params: GaussianParams, z: np.ndarray, eps: np.ndarray) -> np.ndarray:
        score = eps / params.scale
        if self.learn_scale:
            score = np.concatenate([score, (eps * eps - 1.0) / params.scale], axis=-1)
        return score

    def pathwise(self, params: GaussianParams, eps: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.learn_scale:
            return np.concatenate([grad, grad * eps], axis=-1)
        return grad

    def weak_derivative(self, params: GaussianParams, rng, shape, sampling, coupling: bool) -> list[WeakTerm]:
        mean, d = params.mean, dim(params)
        sigma = np.broadcast_to(np.asarray(params.scale, dtype=float), (d,))
        widths = (2 if coupling else 4) + ((2 if coupling else 1) if self.learn_scale else 0)
        # The background ε is drawn first and alone, as every estimator draws its base noise, so
        # runs that differ only in the estimator share it; then the other variates in one block.
        eps = sampling(rng, shape, d)
        n = [eps, *np.split(sampling(rng, shape, (widths - 1) * d), widths - 1, axis=-1)]
        if coupling:
            eps_plus = eps_minus = n[0]
            w_plus = w_minus = rayleigh(n[1])
        else:
            eps_plus, eps_minus, w_plus, w_minus = n[0], n[1], rayleigh(n[2]), rayleigh(n[3])
        background_plus, background_minus = mean + sigma * eps_plus, mean + sigma * eps_minus
        terms = [WeakTerm(_replace_diagonal(background_plus, mean + sigma * w_plus),
                          _replace_diagonal(background_minus, mean - sigma * w_minus),
                          sigma * math.sqrt(2.0 * math.pi))]
        if self.learn_scale:
            m = double_sided_maxwell(n[-2] if coupling else n[-1])
            plus = _replace_diagonal(background_plus, mean + sigma * m)
            if coupling:
                minus = _replace_diagonal(background_plus, mean + sigma * m * ndtr(n[-1]))
            else:
                minus = background_minus[..., None, :]  # q⁻ = q: the same for every coordinate
            terms.append(WeakTerm(plus, minus, sigma))
        return terms


# --- Bernoulli.


class BernoulliParams(NamedTuple):
    logits: np.ndarray  # φ (d,): b_j ~ Bernoulli(σ(φ_j)) independently


def sigmoid(x):
    """σ(x) = 1/(1 + e^{−x}), without overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


@dataclass(frozen=True)
class Bernoulli:
    r"""Independent b_j ~ Bernoulli(p_j), p_j = σ(φ_j), on {0, 1}^d; one block, ``logits`` φ.

    Base noise u ~ U(0, 1)^d and b_j = 1[u_j < p_j]: exact under every scheme that gives
    each u the uniform marginal (antithetic pairs u, 1 − u; scrambled Sobol points).

    * score: ∂ log q/∂φ_j = b_j − p_j;
    * no reparameterization (b is a step function of φ: ∂b/∂φ = 0 almost everywhere);
    * weak derivative: ∂_φj E f = p_j(1 − p_j)·(E[f | b_j = 1] − E[f | b_j = 0]), so q⁺
      sets b_j = 1 and q⁻ sets b_j = 0 in the same sample (the local expectation gradient).

    Reference: Williams (1992); Mohamed et al. (2020), sections 4 and 6; Titsias and
    Lázaro-Gredilla (2015), local expectation gradients.
    """

    name: ClassVar[str] = "bernoulli"
    blocks: ClassVar[tuple[str, ...]] = ("logits",)
    learned: ClassVar[tuple[str, ...]] = ("logits",)
    base: ClassVar[str] = "uniform"
    schemes: ClassVar[tuple[str, ...]] = ("independent", "antithetic", "qmc")
    Params: ClassVar[type] = BernoulliParams

    def noise(self, sampling, rng, shape, params) -> np.ndarray:
        return sampling(rng, shape, dim(params), base="uniform")

    def sample(self, params: BernoulliParams, eps: np.ndarray) -> np.ndarray:
        return (eps < sigmoid(params.logits)).astype(float)

    def score(self, params: BernoulliParams, z: np.ndarray, eps: np.ndarray) -> np.ndarray:
        return z - sigmoid(params.logits)

    def weak_derivative(self, params: BernoulliParams, rng, shape, sampling, coupling: bool) -> list[WeakTerm]:
        # Coupled: both parts share the sample's other coordinates; else q⁻ draws its own.
        d = dim(params)
        b_plus = self.sample(params, self.noise(sampling, rng, shape, params))
        b_minus = b_plus if coupling else self.sample(params, self.noise(sampling, rng, shape, params))
        ones, zeros = np.ones(d), np.zeros(d)
        p = sigmoid(params.logits)
        return [WeakTerm(_replace_diagonal(b_plus, ones), _replace_diagonal(b_minus, zeros), 1.0 / (p * (1.0 - p)))]


def with_learned(family: Family, blocks: tuple[str, ...]) -> Family:
    """``family`` learning ``blocks`` as well: for a Gaussian, ``scale`` turns on ``learn_scale``."""
    if "scale" in blocks and "scale" in family.blocks and dataclasses.is_dataclass(family):
        return dataclasses.replace(family, learn_scale=True)
    raise ValueError(f"the {family.name} family cannot also learn {', '.join(blocks)}")
