r"""Bayesian logistic regression with a diagonal Gaussian variational posterior.

Data: scikit-learn's bundled Wisconsin breast cancer set (569 cases, 30 features; no
download), features standardised with the training split's statistics, plus an intercept:
d = 31. Labels y ∈ {0, 1}, t = 2y − 1, likelihood p(y | x, w) = σ(t·xᵀw), prior
w ~ N(0, s²I), variational posterior q = N(μ, diag σ²).

The run minimises the negative ELBO,

    L(μ, σ) = E_q[f(w)] − H(q),   f(w) = −log p(y | X, w) − log p(w),   H(q) = Σ_j log σ_j + (d/2) log(2πe),

with the estimators estimating ∇E_q[f] and the entropy's gradient (0, −1/σ) added exactly
(:meth:`LogisticRegression.analytic_grad`). Since xᵢᵀw ~ N(xᵢᵀμ, Σ_j x_ij²σ_j²) under q,
E_q[f] and its gradients reduce to one-dimensional Gaussian integrals per case, computed by
Gauss–Hermite quadrature (Price's theorem for the scale: ∂E ℓ(a)/∂σ_j = x_j²σ_j E ℓ''(a)).
So ``loss`` (−ELBO), ``elbo`` and ∇L are known to quadrature accuracy; the estimators'
exact variances are not.

There is no known optimum: ``optimum`` is NaN, so ``dist_to_opt`` is NaN and a run never
reaches tolerance (``steps_to_tol`` = T + 1, ``converged`` = 0); the divergence bound is
measured from θ₀ = 0 in units of s√d. ``test_accuracy`` is the accuracy on the held-out
split of the classifier 1[xᵀμ > 0] (the posterior mean's; a probit-approximate predictive
has the same sign).

Reference: Mohamed et al. (2020), section 8.3; Jaakkola & Jordan (2000).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # overflow-free


@functools.cache
def _data(test_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(split_seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    centre, spread = x[train].mean(axis=0), x[train].std(axis=0)
    design = np.hstack([(x - centre) / spread, np.ones((len(y), 1))])
    for a in (design, y):
        a.flags.writeable = False
    return design[train], y[train].astype(float), design[test], y[test].astype(float)


@functools.cache
def _hermite(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with Σ w·ψ(x) ≈ E ψ(ε), ε ~ N(0, 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class LogisticRegression:
    """f(w) = −log p(y | X, w) − log p(w) on the training split; see the module docstring."""

    prior_scale: float = 1.0
    sigma: float = 0.1  # the initial (or, without learn_scale, fixed) posterior scale
    test_fraction: float = 0.2
    split_seed: int = 0

    @property
    def data(self):
        return _data(self.test_fraction, self.split_seed)

    @property
    def dim(self) -> int:
        return self.data[0].shape[1]

    @property
    def theta0(self) -> np.ndarray:
        return np.zeros(self.dim)

    @property
    def optimum(self) -> np.ndarray:
        return np.full(self.dim, math.nan)

    @property
    def distance(self) -> float:
        return math.nan

    @property
    def scale(self) -> float:
        return self.prior_scale * math.sqrt(self.dim)

    # The integrand and its derivatives, on batches of weights w (shape (..., d)).
    def __call__(self, w: np.ndarray) -> np.ndarray:
        x, y = self.data[:2]
        a = w @ x.T  # (..., n)
        nll = np.logaddexp(0.0, -(2.0 * y - 1.0) * a).sum(axis=-1)
        log_prior_norm = 0.5 * self.dim * math.log(2.0 * math.pi * self.prior_scale**2)
        return nll + 0.5 * np.einsum("...i,...i->...", w, w) / self.prior_scale**2 + log_prior_norm

    def grad(self, w: np.ndarray) -> np.ndarray:
        x, y = self.data[:2]
        return (_sigmoid(w @ x.T) - y) @ x + w / self.prior_scale**2

    def hessian(self, w: np.ndarray) -> np.ndarray:
        x = self.data[0]
        p = _sigmoid(w @ x.T)
        return np.einsum("...n,ni,nj->...ij", p * (1.0 - p), x, x) + np.eye(self.dim) / self.prior_scale**2

    # Exact (quadrature) objective and gradients.
    def _scale(self, scale) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.sigma if scale is None else scale, dtype=float), (self.dim,))

    def _moments(self, mean, scale):
        """Quadrature of ℓ_i, ℓ_i', ℓ_i'' at a_i = xᵢᵀw ~ N(m_i, v_i), for every training case."""
        x, y = self.data[:2]
        nodes, weights = _hermite()
        sigma = self._scale(scale)
        m, sd = x @ mean, np.sqrt((x * x) @ (sigma * sigma))
        a = m[:, None] + sd[:, None] * nodes  # (n, q)
        t = (2.0 * y - 1.0)[:, None]
        p = _sigmoid(a)
        ell = np.logaddexp(0.0, -t * a) @ weights
        d1 = (p - y[:, None]) @ weights
        d2 = (p * (1.0 - p)) @ weights
        return sigma, ell, d1, d2

    def expected_f(self, mean, scale=None) -> float:
        sigma, ell, _, _ = self._moments(mean, scale)
        s2 = self.prior_scale**2
        return float(ell.sum() + 0.5 * (mean @ mean + sigma @ sigma) / s2 + 0.5 * self.dim * math.log(2 * math.pi * s2))

    def entropy(self, scale=None) -> float:
        sigma = self._scale(scale)
        return float(np.sum(np.log(np.abs(sigma))) + 0.5 * self.dim * math.log(2.0 * math.pi * math.e))

    def loss(self, mean, scale=None) -> float:
        """−ELBO at (μ, σ)."""
        return self.expected_f(mean, scale) - self.entropy(scale)

    def true_grad(self, mean, scale=None) -> np.ndarray:
        """∇_μ(−ELBO) = Σ_i x_i E ℓ_i'(a_i) + μ/s² (the entropy does not depend on μ)."""
        _, _, d1, _ = self._moments(mean, scale)
        return self.data[0].T @ d1 + mean / self.prior_scale**2

    def true_grad_scale(self, mean, scale) -> np.ndarray:
        """∂(−ELBO)/∂σ_j = σ_j Σ_i x_ij² E ℓ_i''(a_i) + σ_j/s² − 1/σ_j."""
        sigma, _, _, d2 = self._moments(mean, scale)
        x = self.data[0]
        return sigma * ((x * x).T @ d2) + sigma / self.prior_scale**2 - 1.0 / sigma

    def analytic_grad(self, mean, scale, learn_scale: bool) -> np.ndarray:
        """The part of ∇L known exactly, added to the estimate of ∇E_q[f]: −∇H = (0, −1/σ)."""
        if not learn_scale:
            return np.zeros(self.dim)
        return np.concatenate([np.zeros(self.dim), -1.0 / self._scale(scale)])

    def grad_variance_exact(self, estimator, theta, samples: int) -> float | None:
        return None

    def grad_variance_blocks(self, estimator, mean, scale, samples: int) -> dict[str, float | None]:
        from estimators import options

        return {"mean": None, "scale": None} if options(estimator)[1].get("with_scale") else {"mean": None}

    def metrics(self, mean, scale) -> dict[str, float]:
        """The ELBO (by quadrature) and the held-out accuracy of 1[xᵀμ > 0]."""
        x_test, y_test = self.data[2:]
        accuracy = float(np.mean((x_test @ mean > 0) == (y_test > 0.5)))
        return {"elbo": -self.loss(mean, scale), "test_accuracy": accuracy}
