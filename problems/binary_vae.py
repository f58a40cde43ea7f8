r"""A variational autoencoder with binary latents on scikit-learn's bundled digits: the model's maths.

Data (:func:`digits`): the 1,797 8×8 images of ``sklearn.datasets.load_digits`` (no download),
D = 64 pixels with values 0–16, scaled to x/16 ∈ [0, 1] and split into training and test sets by
a permutation from ``numpy.random.default_rng(split_seed)``. Static binarisation thresholds once
(x_i = 1[pixel > 8]); dynamic binarisation keeps x/16 as probabilities and draws fresh
x_i ~ Bernoulli(x_i/16) per minibatch (:func:`binarize_batch`).

Model, L binary latents b ∈ {0, 1}^L (Mnih & Gregor 2014; Tucker et al. 2017), with
softplus(t) = log(1 + e^t), so that log σ(t) = −softplus(−t) and log Bernoulli(y; σ(t)) = y t − softplus(t):

    encoder   q(b | x) = Π_j Bernoulli(b_j; σ(φ_j)),   φ = W_e x + c_e            (L,)
    decoder   p(x | b) = Π_i Bernoulli(x_i; σ(η_i)),   η = W_d b + c_d            (D,)
    prior     p(b)     = Π_j Bernoulli(b_j; σ(a_j))

    log q(b | x) = bᵀφ − Σ_j softplus(φ_j)
    log p(x, b)  = xᵀη − Σ_i softplus(η_i) + bᵀa − Σ_j softplus(a_j)

Both are affine (log q) or smooth (log p) in b, so they are evaluated unchanged at relaxed
b ∈ [0, 1]^L. The objective per datum is the negative ELBO (Kingma & Welling 2014),

    −ELBO(x) = E_q[f(b)],   f(b) = log q(b | x) − log p(x, b),

minimised over the encoder (W_e, c_e) through q and over the model (W_d, c_d, a) through f.
With φ held fixed inside f (:func:`integrand`), ∇_φ E_q[f] is what a gradient estimator for the
Bernoulli family estimates: the explicit dependence of f on φ adds E_q[∂ log q/∂φ] = 0. The
gradients given in closed form, with r = σ(η) − x (D,):

* integrand, ∂f/∂b = φ − a + W_dᵀ r (:meth:`Integrand.grad`), at binary or relaxed b;
* model, given samples b (:func:`model_grads`): ∂(−log p(x, b))/∂W_d = r bᵀ, ∂/∂c_d = r,
  ∂/∂a = σ(a) − b, averaged over the samples and the batch; exact given b, since the
  distribution q does not depend on the model's parameters;
* encoder (:func:`encoder_grads`), by the chain rule through φ = W_e x + c_e from a per-datum
  gradient g = ∂/∂φ (an estimate of ∇_φ E_q[f], say): ∂/∂W_e = g xᵀ, ∂/∂c_e = g, batch-averaged.

Evaluation: the Monte Carlo ELBO (:func:`elbo`); the exact ELBO for L ≤ 16 (:func:`exact_elbo`)
as E_q log p(x | b) by enumerating the 2^L latents minus the closed-form
KL(q ‖ p) = Σ_j [σ(φ_j)(φ_j − a_j) − softplus(φ_j) + softplus(a_j)] (:func:`kl_divergence`);
the importance-weighted bound (Burda, Grosse & Salakhutdinov 2016)
log (1/K) Σ_k p(x, b_k)/q(b_k | x), b_k ~ q (:func:`iwae_bound`), a lower bound on log p(x) whose
mean rises with K, equal in mean to the ELBO at K = 1; and log p(x) = logsumexp_b log p(x, b) by
enumeration (:func:`exact_log_likelihood`).

Arrays: a batch x is (B, D); latents b are (..., B, L), the leading axes being samples;
per-datum values are (..., B).

For comparison with the pathwise estimator, a Gaussian-latent variant (prefix ``gaussian_``):
q(z | x) = N(μ, diag σ²), μ = W_μ x + c_μ, log σ = W_σ x + c_σ, the same Bernoulli decoder on
z ∈ R^L and the prior N(0, I); z = μ + σ ε, ε ~ N(0, I). With r = σ(W_d z + c_d) − x,

    f(z) = log q(z | x) − log p(x, z),   ∂f/∂z = −(z − μ)/σ² + z + W_dᵀ r,
    KL(q ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − 2 log σ_j),

and the decoder's gradients are those of the binary model with z for b (the prior has no
parameters).

References: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; Burda, Grosse &
Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016; Mnih & Gregor, "Neural Variational
Inference and Learning in Belief Networks", ICML 2014; Tucker, Mnih, Maddison, Lawson &
Sohl-Dickstein, "REBAR", NeurIPS 2017.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from estimators.families import sigmoid

MAX_ENUMERATED = 16  # 2^16 latent configurations: the largest L the exact quantities enumerate
_CHUNK = 1 << 22  # entries of a (configurations, batch) table per enumeration step: bounds the memory


def softplus(t):
    """log(1 + e^t), without overflow."""
    t = np.asarray(t, dtype=float)
    return np.maximum(t, 0.0) + np.log1p(np.exp(-np.abs(t)))


# --- Data.


@functools.cache
def _digits(binarize: str, test_fraction: float, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    pixels = load_digits().data  # (1797, 64), integers 0–16
    x = (pixels > 8).astype(float) if binarize == "static" else pixels / 16.0
    order = np.random.default_rng(split_seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    train, test = x[order[n_test:]], x[order[:n_test]]
    for a in (train, test):
        a.flags.writeable = False  # shared by every caller through the cache
    return train, test


def digits(binarize: str = "static", test_fraction: float = 0.2, split_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) images, (n, 64) floats in [0, 1], read-only.

    ``"static"``: 1[pixel > 8], fixed; ``"dynamic"``: pixel/16, probabilities to be binarised per
    minibatch by :func:`binarize_batch`. The test set is the first round(test_fraction·1797) entries
    of ``default_rng(split_seed).permutation(1797)``, the training set the rest.
    """
    if binarize not in ("static", "dynamic"):
        raise ValueError(f"binarize must be 'static' or 'dynamic', not {binarize!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1), not {test_fraction!r}")
    return _digits(binarize, float(test_fraction), int(split_seed))


def binarize_batch(x_prob: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fresh draw x_i ~ Bernoulli(x_prob_i), as floats in {0, 1} (dynamic binarisation)."""
    return (rng.random(np.shape(x_prob)) < x_prob).astype(float)


# --- Parameters.


class VAEParams(NamedTuple):
    enc_weight: np.ndarray  # W_e (L, D)
    enc_bias: np.ndarray  # c_e (L,)
    dec_weight: np.ndarray  # W_d (D, L)
    dec_bias: np.ndarray  # c_d (D,)
    prior_logits: np.ndarray  # a (L,)


class GaussianVAEParams(NamedTuple):
    mean_weight: np.ndarray  # W_μ (L, D)
    mean_bias: np.ndarray  # c_μ (L,)
    log_scale_weight: np.ndarray  # W_σ (L, D)
    log_scale_bias: np.ndarray  # c_σ (L,)
    dec_weight: np.ndarray  # W_d (D, L)
    dec_bias: np.ndarray  # c_d (D,)


def flatten(params) -> np.ndarray:
    """One flat vector (a copy): the fields in declaration order, each row-major. For :class:`VAEParams`,
    W_e, c_e, W_d, c_d, a: 2LD + 2L + D entries."""
    return np.concatenate([np.ravel(p) for p in params])


def unflatten(theta: np.ndarray, like):
    """Parameters shaped and typed like ``like`` (a :class:`VAEParams` or :class:`GaussianVAEParams`),
    taken from the flat ``theta`` in :func:`flatten`'s order (views into it)."""
    sizes = [np.size(p) for p in like]
    if theta.shape != (sum(sizes),):
        raise ValueError(f"theta has shape {theta.shape}, expected ({sum(sizes)},)")
    bounds = np.cumsum([0, *sizes])
    return type(like)(*(theta[lo:hi].reshape(np.shape(p)) for lo, hi, p in zip(bounds[:-1], bounds[1:], like)))


def _decoder_bias(train: np.ndarray, clip: float) -> np.ndarray:
    """The logits of the clipped pixel means: the decoder starts at the marginal pixel distribution
    (clipped, since some border pixels are always 0)."""
    m = np.clip(np.mean(train, axis=0), clip, 1.0 - clip)
    return np.log(m) - np.log1p(-m)


def init(latents: int, train: np.ndarray, rng: np.random.Generator, scale: float = 0.01,
         clip: float = 1e-3) -> VAEParams:
    """Weights N(0, scale²), encoder bias 0, decoder bias the logits of the clipped training pixel
    means, prior logits 0."""
    d = train.shape[1]
    return VAEParams(scale * rng.standard_normal((latents, d)), np.zeros(latents),
                     scale * rng.standard_normal((d, latents)), _decoder_bias(train, clip), np.zeros(latents))


def zeros_like(params):
    """Parameters of the same type and shapes, all zero."""
    return type(params)(*(np.zeros(np.shape(p)) for p in params))


# --- The binary model.


def encoder_logits(params: VAEParams, x: np.ndarray) -> np.ndarray:
    """φ = x W_eᵀ + c_e, (B, L)."""
    return x @ params.enc_weight.T + params.enc_bias


def sample(logits: np.ndarray, rng: np.random.Generator, samples: int) -> np.ndarray:
    """``samples`` draws b ~ q, (samples, B, L): b = 1[u < σ(φ)], u ~ U(0, 1), as the Bernoulli family."""
    return (rng.random((samples, *np.shape(logits))) < sigmoid(logits)).astype(float)


def log_q(logits: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log q(b | x) = bᵀφ − Σ_j softplus(φ_j), (..., B)."""
    return (b * logits).sum(axis=-1) - softplus(logits).sum(axis=-1)


def _decoder_logits(params, b: np.ndarray) -> np.ndarray:
    return b @ params.dec_weight.T + params.dec_bias  # η, (..., B, D)


def _log_lik(x: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """log p(x | η) = xᵀη − Σ_i softplus(η_i), (..., B)."""
    return (x * eta).sum(axis=-1) - softplus(eta).sum(axis=-1)


def log_joint(params: VAEParams, x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log p(x | b) + log p(b), (..., B), for b (..., B, L)."""
    a = params.prior_logits
    return _log_lik(x, _decoder_logits(params, b)) + b @ a - softplus(a).sum()


def kl_divergence(logits: np.ndarray, prior_logits: np.ndarray) -> np.ndarray:
    """KL(q(· | x) ‖ p) = Σ_j [σ(φ_j)(φ_j − a_j) − softplus(φ_j) + softplus(a_j)], (B,)."""
    return (sigmoid(logits) * (logits - prior_logits) - softplus(logits) + softplus(prior_logits)).sum(axis=-1)


class Integrand:
    """f(b) = log q(b | x) − log p(x, b) per datum, (..., B), the encoder logits φ fixed at construction;
    ``grad(b)`` = ∂f/∂b = φ − a + W_dᵀ(σ(η) − x), (..., B, L).

    The decoder's logits η and e^{−|η|} of the last points decoded are kept: f, ∇f and the decoder's
    gradient (:meth:`BinaryVAE.backward`) at the same samples share one product W_d b and one exp, and
    softplus(η) = max(η, 0) + log1p(e^{−|η|}) and σ(η) both come from that exp."""

    def __init__(self, params: VAEParams, x: np.ndarray):
        self.params, self.x = params, x
        self.logits = encoder_logits(params, x)
        # f(b) = bᵀ(φ − a) − log p(x | b) − Σ_j softplus(φ_j) + Σ_j softplus(a_j): the b-free terms once.
        self._slope = self.logits - params.prior_logits
        self._seen = None  # (b, η, e^{−|η|}) of the last decoding: reused at the same points

    def _decode(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """η = W_d b + c_d and e^{−|η|} at b, (..., B, D): taken from the last decoding when b equals it or
        one of its leading slices (estimators evaluate f and ∇f, and the model's gradient is taken, at the
        same samples), else computed and kept (with a copy of b, which the caller may overwrite)."""
        b, seen = np.asarray(b), self._seen
        if seen is not None:
            points, eta, e = seen
            if points.shape == b.shape:
                if np.array_equal(points, b):
                    return eta, e
            elif points.shape[1:] == b.shape:
                for k in range(len(points)):
                    if np.array_equal(points[k], b):
                        return eta[k], e[k]
        eta = _decoder_logits(self.params, b)
        e = np.exp(-np.abs(eta))
        self._seen = (np.array(b, dtype=float), eta, e)
        return eta, e

    @functools.cached_property
    def _offset(self) -> np.ndarray:
        """Σ_j softplus(a_j) − Σ_j softplus(φ_j), (B,): on first use, since estimators that take ∇f alone
        never need it."""
        return softplus(self.params.prior_logits).sum() - softplus(self.logits).sum(axis=-1)

    def residual(self, b: np.ndarray) -> np.ndarray:
        """r = σ(η) − x at b, (..., B, D), with σ(η) = 1/(1 + e^{−η}) from e^{−|η|} (no overflow)."""
        eta, e = self._decode(b)
        r = np.where(eta >= 0.0, 1.0, e)
        r /= 1.0 + e
        r -= self.x
        return r

    def __call__(self, b: np.ndarray) -> np.ndarray:
        eta, e = self._decode(b)
        # softplus(η) = max(η, 0) + log1p(e^{−|η|}); log p(x | b) = xᵀη − Σ_i softplus(η_i).
        soft = np.log1p(e)
        soft += np.maximum(eta, 0.0)
        log_lik = np.einsum("...i,...i->...", self.x, eta) - soft.sum(axis=-1)
        return np.einsum("...j,...j->...", b, self._slope) - log_lik + self._offset

    def grad(self, b: np.ndarray) -> np.ndarray:
        return self._slope + self.residual(b) @ self.params.dec_weight


def integrand(params: VAEParams, x: np.ndarray) -> Integrand:
    """The negative ELBO integrand of the batch ``x``: see :class:`Integrand`."""
    return Integrand(params, x)


def _decoder_grads(x: np.ndarray, b: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """∂/∂(W_d, c_d) of the mean over samples and batch of −log p(x | b): mean r bᵀ and mean r."""
    r = sigmoid(eta) - x
    b = np.broadcast_to(b, (*r.shape[:-1], b.shape[-1])).reshape(-1, b.shape[-1])  # b shared across a batch axis
    r = r.reshape(-1, r.shape[-1])
    n = len(r)
    return r.T @ b / n, r.sum(axis=0) / n


def model_grads(params: VAEParams, x: np.ndarray, b: np.ndarray) -> VAEParams:
    """The gradient of the mean over samples and batch of −log p(x, b) in (W_d, c_d, a), the encoder's
    entries zero: mean r bᵀ, mean r, σ(a) − mean b (r = σ(W_d b + c_d) − x)."""
    dw, dc = _decoder_grads(x, b, _decoder_logits(params, b))
    leading = np.broadcast_shapes(np.shape(b)[:-1], np.shape(x)[:-1])  # b may be shared across the batch axis
    mean_b = np.broadcast_to(b, (*leading, b.shape[-1])).mean(axis=tuple(range(len(leading))))
    da = sigmoid(params.prior_logits) - mean_b
    z = params.enc_weight
    return VAEParams(np.zeros_like(z), np.zeros(z.shape[0]), dw, dc, da)


def encoder_grads(x: np.ndarray, g_logits: np.ndarray) -> VAEParams:
    """The gradient in (W_e, c_e) of a batch mean, from its per-datum gradient ``g_logits`` (B, L) in the
    logits φ = x W_eᵀ + c_e: (gᵀx/B, mean g); the other entries zero."""
    n, latents = g_logits.shape
    return VAEParams(g_logits.T @ x / n, g_logits.mean(axis=0), np.zeros((x.shape[1], latents)),
                     np.zeros(x.shape[1]), np.zeros(latents))


def elbo(params: VAEParams, x: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """The Monte Carlo ELBO per datum, (B,): the mean of log p(x, b) − log q(b | x) over ``samples``
    draws b ~ q."""
    logits = encoder_logits(params, x)
    b = sample(logits, rng, samples)
    return (log_joint(params, x, b) - log_q(logits, b)).mean(axis=0)


def iwae_bound(params: VAEParams, x: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """log (1/K) Σ_k p(x, b_k)/q(b_k | x), b_k ~ q, K = ``samples``, per datum (B,) (Burda et al. 2016)."""
    logits = encoder_logits(params, x)
    b = sample(logits, rng, samples)
    return logsumexp(log_joint(params, x, b) - log_q(logits, b), axis=0) - math.log(samples)


def _configurations(latents: int, width: int):
    """Every b ∈ {0, 1}^L, (2^L, L), in chunks of rows, so that a (chunk, width) table stays bounded in memory."""
    if latents > MAX_ENUMERATED:
        raise ValueError(f"enumeration over 2^{latents} latent configurations: at most L = {MAX_ENUMERATED}")
    total = 1 << latents
    bits = np.arange(latents)
    step = max(1, min(total, _CHUNK // max(width, 1)))
    for start in range(0, total, step):
        k = np.arange(start, min(total, start + step))
        yield ((k[:, None] >> bits) & 1).astype(float)


def _log_lik_table(params: VAEParams, x: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """log p(x_n | b_k) for every configuration k and datum n, (K, B): η_kᵀx_n − Σ_i softplus(η_ki) as one
    matrix product, the softplus per configuration only."""
    eta = bits @ params.dec_weight.T + params.dec_bias  # (K, D)
    return eta @ x.T - softplus(eta).sum(axis=1)[:, None]


def exact_elbo(params: VAEParams, x: np.ndarray) -> np.ndarray:
    """The ELBO per datum, (B,), for L ≤ 16: E_q log p(x | b) by enumerating the 2^L latents, minus the
    closed-form KL(q ‖ p) (:func:`kl_divergence`)."""
    logits = encoder_logits(params, x)
    expected = np.zeros(len(x))
    for bits in _configurations(logits.shape[1], max(len(x), x.shape[1])):
        q = np.exp(bits @ logits.T - softplus(logits).sum(axis=1))  # q(b_k | x_n), (K, B)
        expected += np.einsum("kn,kn->n", q, _log_lik_table(params, x, bits))
    return expected - kl_divergence(logits, params.prior_logits)


def exact_log_likelihood(params: VAEParams, x: np.ndarray) -> np.ndarray:
    """log p(x) = logsumexp_b [log p(x | b) + log p(b)] per datum, (B,), by enumeration (L ≤ 16)."""
    a = params.prior_logits
    total = np.full(len(x), -np.inf)
    for bits in _configurations(len(a), max(len(x), x.shape[1])):
        table = _log_lik_table(params, x, bits) + (bits @ a - softplus(a).sum())[:, None]
        total = np.logaddexp(total, logsumexp(table, axis=0))
    return total


# --- The Gaussian-latent variant.


_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_init(latents: int, train: np.ndarray, rng: np.random.Generator, scale: float = 0.01,
                  clip: float = 1e-3) -> GaussianVAEParams:
    """Weights N(0, scale²), encoder biases 0 (so σ ≈ 1), decoder bias the logits of the clipped pixel means."""
    d = train.shape[1]
    return GaussianVAEParams(scale * rng.standard_normal((latents, d)), np.zeros(latents),
                             scale * rng.standard_normal((latents, d)), np.zeros(latents),
                             scale * rng.standard_normal((d, latents)), _decoder_bias(train, clip))


def gaussian_encoder(params: GaussianVAEParams, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ, log σ), each (B, L)."""
    return x @ params.mean_weight.T + params.mean_bias, x @ params.log_scale_weight.T + params.log_scale_bias


def gaussian_sample(mean: np.ndarray, log_scale: np.ndarray, rng: np.random.Generator,
                    samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(z, ε), each (samples, B, L): z = μ + σ ε, ε ~ N(0, I)."""
    eps = rng.standard_normal((samples, *np.shape(mean)))
    return mean + np.exp(log_scale) * eps, eps


def gaussian_log_q(mean: np.ndarray, log_scale: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log N(z; μ, diag σ²), (..., B)."""
    u = (z - mean) * np.exp(-log_scale)
    return -0.5 * np.einsum("...j,...j->...", u, u) - log_scale.sum(axis=-1) - 0.5 * mean.shape[-1] * _LOG_2PI


def gaussian_log_joint(params: GaussianVAEParams, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """log p(x | z) + log N(z; 0, I), (..., B), for z (..., B, L)."""
    prior = -0.5 * np.einsum("...j,...j->...", z, z) - 0.5 * z.shape[-1] * _LOG_2PI
    return _log_lik(x, _decoder_logits(params, z)) + prior


def gaussian_kl(mean: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − 2 log σ_j), (B,)."""
    return 0.5 * (mean * mean + np.exp(2.0 * log_scale) - 1.0 - 2.0 * log_scale).sum(axis=-1)


class GaussianIntegrand:
    """f(z) = log q(z | x) − log p(x, z) per datum, (..., B), (μ, σ) fixed at construction;
    ``grad(z)`` = −(z − μ)/σ² + z + W_dᵀ(σ(W_d z + c_d) − x), (..., B, L)."""

    def __init__(self, params: GaussianVAEParams, x: np.ndarray):
        self.params, self.x = params, x
        self.mean, self.log_scale = gaussian_encoder(params, x)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return gaussian_log_q(self.mean, self.log_scale, z) - gaussian_log_joint(self.params, self.x, z)

    def grad(self, z: np.ndarray) -> np.ndarray:
        p = self.params
        r = sigmoid(_decoder_logits(p, z)) - self.x
        return -(z - self.mean) * np.exp(-2.0 * self.log_scale) + z + r @ p.dec_weight


def gaussian_integrand(params: GaussianVAEParams, x: np.ndarray) -> GaussianIntegrand:
    """The negative ELBO integrand of the Gaussian-latent model: see :class:`GaussianIntegrand`."""
    return GaussianIntegrand(params, x)


def gaussian_model_grads(params: GaussianVAEParams, x: np.ndarray, z: np.ndarray) -> GaussianVAEParams:
    """The gradient of the mean over samples and batch of −log p(x, z) in (W_d, c_d) given the samples z,
    the encoder's entries zero."""
    dw, dc = _decoder_grads(x, z, _decoder_logits(params, z))
    zero = np.zeros_like(params.mean_weight)
    return GaussianVAEParams(zero, np.zeros(zero.shape[0]), zero.copy(), np.zeros(zero.shape[0]), dw, dc)


def gaussian_encoder_grads(x: np.ndarray, g_mean: np.ndarray, g_log_scale: np.ndarray) -> GaussianVAEParams:
    """The gradient in the encoder's weights and biases of a batch mean, from its per-datum gradients in μ and
    log σ (each (B, L)); the decoder's entries zero."""
    n, latents = g_mean.shape
    return GaussianVAEParams(g_mean.T @ x / n, g_mean.mean(axis=0), g_log_scale.T @ x / n, g_log_scale.mean(axis=0),
                             np.zeros((x.shape[1], latents)), np.zeros(x.shape[1]))


def gaussian_elbo(params: GaussianVAEParams, x: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """The ELBO per datum, (B,): the Monte Carlo mean of log p(x | z) over ``samples`` draws z ~ q, minus the
    closed-form KL."""
    mean, log_scale = gaussian_encoder(params, x)
    z, _ = gaussian_sample(mean, log_scale, rng, samples)
    return _log_lik(x, _decoder_logits(params, z)).mean(axis=0) - gaussian_kl(mean, log_scale)


def gaussian_iwae_bound(params: GaussianVAEParams, x: np.ndarray, samples: int,
                        rng: np.random.Generator) -> np.ndarray:
    """log (1/K) Σ_k p(x, z_k)/q(z_k | x), z_k ~ q, K = ``samples``, per datum (B,) (Burda et al. 2016)."""
    mean, log_scale = gaussian_encoder(params, x)
    z, _ = gaussian_sample(mean, log_scale, rng, samples)
    log_w = gaussian_log_joint(params, x, z) - gaussian_log_q(mean, log_scale, z)
    return logsumexp(log_w, axis=0) - math.log(samples)


# --- The problem the suite trains (problems.base.Trainable).

EVALUATION_SIZE = 500  # training images on which the `elbo` curve is measured
ELBO_SAMPLES = 10  # draws of b per datum for E_q log p(x | b) in that curve (the KL is exact)
_TEST_CHUNK = 64  # test images per step of the importance-weighted bound: bounds its memory


@dataclass(frozen=True)
class BinaryVAE:
    r"""``problem=binary_vae``: train the VAE above on the digits, the encoder's gradient estimated.

    θ = (W_e, c_e, W_d, c_d, a), flat in :func:`flatten`'s order (for ``latent="gaussian"``,
    (W_μ, c_μ, W_σ, c_σ, W_d, c_d)); θ₀ by :func:`init` (:func:`gaussian_init`) from the run's
    own generator. Each step takes a minibatch of ``batch`` training images (reshuffled every
    epoch, binarised afresh under ``binarize="dynamic"``); the family is one distribution per
    datum (``Bernoulli(batch_shape=(batch,))`` over logits φ = W_e x + c_e, or a Gaussian learning
    mean and scale, σ = exp(W_σ x + c_σ)), and the integrand the negative ELBO's f with the
    encoder's output held fixed (:class:`Integrand`, :class:`GaussianIntegrand`).

    The estimator gives ∇_φ E_q[f] per datum; :meth:`backward` carries it to (W_e, c_e) by the
    chain rule (through σ = e^{log σ} too: ∂/∂log σ = σ·∂/∂σ) and adds the model's gradient,
    exact given the samples (:func:`model_grads`). Curves (:meth:`curve_values`): ``elbo``, per
    datum on the first :data:`EVALUATION_SIZE` training images (E_q log p(x | b) from
    :data:`ELBO_SAMPLES` draws, the KL in closed form), ``test_elbo``, the importance-weighted
    bound with ``test_samples`` draws on the test split; ``loss`` is −``elbo``. Under dynamic
    binarisation the evaluation and test images are binarised once, by ``split_seed``.
    """

    latents: int = 20
    binarize: str = "static"
    batch: int = 50
    test_samples: int = 100
    latent: str = "bernoulli"
    test_fraction: float = 0.2
    split_seed: int = 0
    curves = ("elbo", "test_elbo")
    length_scale = 1.0

    def __post_init__(self) -> None:
        from problems.base import require, require_int

        require_int(self, "latents", 1)
        require(self.binarize in ("static", "dynamic"), "binarize", self.binarize, "static, dynamic")
        require_int(self, "batch", 1)
        require_int(self, "test_samples", 1)
        require(self.latent in ("bernoulli", "gaussian"), "latent", self.latent, "bernoulli, gaussian")
        fraction = self.test_fraction
        require(isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction < 1,
                "test_fraction", fraction, "a number in (0, 1)")
        require_int(self, "split_seed", 0)
        n_train = len(self.data[0])
        require(self.batch <= n_train, "batch", self.batch, f"an integer in [1, {n_train}] (the training images)")

    @property
    def gaussian(self) -> bool:
        return self.latent == "gaussian"

    @functools.cached_property
    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) as :func:`digits` gives them."""
        return digits(self.binarize, self.test_fraction, self.split_seed)

    @functools.cached_property
    def fixed(self) -> tuple[np.ndarray, np.ndarray]:
        """(evaluation subset, test set), binary: binarised once, by ``split_seed``, when dynamic."""
        train, test = self.data
        subset = train[:EVALUATION_SIZE]
        if self.binarize == "static":
            return subset, test
        rng = np.random.default_rng(np.random.SeedSequence(self.split_seed, spawn_key=(1,)))
        return binarize_batch(subset, rng), binarize_batch(test, rng)

    @property
    def probe_batch(self) -> np.ndarray:
        """The fixed batch the variance probe measures the encoder's gradient on: the first ``batch``
        images of the evaluation subset (of the training set when that is smaller)."""
        subset = self.fixed[0]
        return subset[: self.batch] if self.batch <= len(subset) else self.data[0][: self.batch]

    @functools.cached_property
    def family(self):
        from estimators import Bernoulli, Gaussian

        batch = (self.batch,)
        return Gaussian(learn_scale=True, batch_shape=batch) if self.gaussian else Bernoulli(batch_shape=batch)

    def _params(self, theta: np.ndarray):
        """θ's fields as views into it (:func:`unflatten`, its layout computed once)."""
        if theta.shape != (self._layout[-1][1],):
            return unflatten(theta, self._like)  # its error message
        return type(self._like)(*(theta[lo:hi].reshape(shape) for lo, hi, shape in self._layout))

    @functools.cached_property
    def _layout(self) -> tuple[tuple[int, int, tuple[int, ...]], ...]:
        """(start, end, shape) of each field in the flat θ."""
        out, start = [], 0
        for field in self._like:
            out.append((start, start + field.size, field.shape))
            start += field.size
        return tuple(out)

    @functools.cached_property
    def _like(self):
        rng = np.random.default_rng(0)
        train = self.data[0]
        return gaussian_init(self.latents, train, rng) if self.gaussian else init(self.latents, train, rng)

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """θ₀, flat: small random weights, the decoder's bias at the training pixels' logits."""
        train = self.data[0]
        params = gaussian_init(self.latents, train, rng) if self.gaussian else init(self.latents, train, rng)
        return flatten(params)

    def minibatches(self, rng: np.random.Generator):
        """Minibatches of ``batch`` training images, forever: a fresh permutation every epoch (its
        remainder dropped), each batch binarised afresh from ``rng`` under dynamic binarisation."""
        train = self.data[0]
        per_epoch = len(train) // self.batch
        while True:
            order = rng.permutation(len(train))
            for k in range(per_epoch):
                x = train[order[k * self.batch:(k + 1) * self.batch]]
                yield binarize_batch(x, rng) if self.binarize == "dynamic" else x

    def integrand(self, theta: np.ndarray, x: np.ndarray):
        """(f, the family's parameters) for the minibatch ``x`` at θ: the distribution per datum and
        the integrand whose expectation under it is the negative ELBO per datum."""
        from estimators import BernoulliParams, GaussianParams

        params = self._params(theta)
        if self.gaussian:
            f = GaussianIntegrand(params, x)
            return f, GaussianParams(f.mean, np.exp(f.log_scale))
        f = Integrand(params, x)
        family_params = BernoulliParams(f.logits)
        # Kept for :meth:`backward`, which gets these parameters back and reuses f's decodings.
        self.__dict__["_last"] = (family_params, f)
        return f, family_params

    def encoder_grad(self, x: np.ndarray, g: np.ndarray, params) -> np.ndarray:
        """The gradient in the encoder's weights and biases, flat ((..., L·D + L), or twice that for
        the Gaussian), of the batch mean of per-datum terms whose gradient in the family's parameters
        is ``g`` (..., B, k): gᵀx/B and the mean of g, per leading index."""
        n = x.shape[0]
        if self.gaussian:
            latents = g.shape[-1] // 2
            g = np.concatenate([g[..., :latents], g[..., latents:] * params.scale], axis=-1)  # ∂/∂log σ
            parts = [g[..., :latents], g[..., latents:]]
        else:
            parts = [g]
        out = []
        for part in parts:
            weight = np.einsum("...bl,bd->...ld", part, x) / n
            out += [weight.reshape(*weight.shape[:-2], -1), part.mean(axis=-2)]
        return np.concatenate(out, axis=-1)

    def backward(self, theta: np.ndarray, x: np.ndarray, g: np.ndarray, params, z: np.ndarray) -> np.ndarray:
        """∇θ of the batch's mean negative ELBO, flat: the encoder's part from ``g`` (B, k), the estimate
        of ∇ E_q[f] per datum in the family's parameters, and the model's part exact given the samples
        ``z`` (N, B, L) drawn from q."""
        last = self.__dict__.get("_last")
        if (not self.gaussian and last is not None and last[0] is params and last[1].x is x and g.ndim == 2
                and z.ndim >= 2 and z.shape[-2:] == g.shape):
            return self._bernoulli_backward(theta, x, g, z, last[1])
        model = self._params(theta)
        encoder = self.encoder_grad(x, g, params)
        rest = (gaussian_model_grads(model, x, z) if self.gaussian else model_grads(model, x, z))
        out = flatten(rest)
        out[: encoder.size] += encoder  # the encoder's entries lead θ, and are zero in the model's part
        return out

    def _bernoulli_backward(self, theta: np.ndarray, x: np.ndarray, g: np.ndarray, z: np.ndarray,
                            f: Integrand) -> np.ndarray:
        """:meth:`backward` written into one flat array, with r = σ(W_d b + c_d) − x from f's own
        decodings at the samples when it has them: (gᵀx/B, mean g, mean r bᵀ, mean r, σ(a) − mean b).
        f is the integrand made at θ (its model's parameters are θ's)."""
        out = np.empty(theta.shape)
        enc_w, enc_b, dec_w, dec_b, prior = self._params(out)
        n, latents = g.shape
        r = f.residual(z).reshape(-1, x.shape[1])
        b = z.reshape(-1, latents)
        np.matmul(g.T, x, out=enc_w)
        enc_w /= n
        np.mean(g, axis=0, out=enc_b)
        np.matmul(r.T, b, out=dec_w)
        dec_w /= len(r)
        np.mean(r, axis=0, out=dec_b)
        np.subtract(sigmoid(f.params.prior_logits), b.mean(axis=0), out=prior)
        return out

    def loss(self, theta: np.ndarray, rng: np.random.Generator) -> float:
        """−ELBO per datum on the evaluation subset."""
        return -self._elbo(theta, rng)

    def _elbo(self, theta: np.ndarray, rng: np.random.Generator) -> float:
        params, x = self._params(theta), self.fixed[0]
        if self.gaussian:
            return float(gaussian_elbo(params, x, ELBO_SAMPLES, rng).mean())
        logits = encoder_logits(params, x)
        b = sample(logits, rng, ELBO_SAMPLES)
        expected = _log_lik(x, _decoder_logits(params, b)).mean(axis=0)
        return float((expected - kl_divergence(logits, params.prior_logits)).mean())

    def curve_values(self, theta: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
        """``elbo`` on the evaluation subset, ``loss`` = −``elbo``, and ``test_elbo`` (importance-weighted,
        ``test_samples`` draws) on the test set, per datum, from ``rng``."""
        elbo = self._elbo(theta, rng)  # first: ``loss`` from a generator in the same state is −elbo
        params, test = self._params(theta), self.fixed[1]
        bound = gaussian_iwae_bound if self.gaussian else iwae_bound
        total = sum(float(bound(params, test[k:k + _TEST_CHUNK], self.test_samples, rng).sum())
                    for k in range(0, len(test), _TEST_CHUNK))
        return {"loss": -elbo, "elbo": elbo, "test_elbo": total / len(test)}

    # Read as an integrand (what configuration checks ask of a problem: f and ∂f/∂z), the problem is
    # f on the probe batch at the initial model of seed 0.
    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.integrand(flatten(self._like), self.probe_batch)[0](z)

    def grad(self, z: np.ndarray) -> np.ndarray:
        return self.integrand(flatten(self._like), self.probe_batch)[0].grad(z)
