"""The binary-latent VAE's maths: data, hand-derived gradients against finite differences, the bounds
against enumeration; and the Gaussian-latent variant's."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from problems import binary_vae as vae
from tests.estimators.checks import Z

B, L, H = 3, 4, 1e-5


def random_params(latents, rng, enc=1.0, dec=2.0, pixels=64):
    """Random parameters of the size of trained ones: confident encoder, decoder logits of several units."""
    return vae.VAEParams(enc * rng.standard_normal((latents, pixels)) / 4, rng.standard_normal(latents),
                         dec * rng.standard_normal((pixels, latents)), rng.standard_normal(pixels),
                         rng.standard_normal(latents))


def gaussian_params(latents, rng, pixels=64):
    return vae.GaussianVAEParams(*(0.3 * rng.standard_normal(s) for s in (
        (latents, pixels), latents, (latents, pixels), latents, (pixels, latents), pixels)))


def batch(n, seed=0):
    train, _ = vae.digits()
    return train[np.random.default_rng(seed).choice(len(train), n, replace=False)]


def finite_difference(objective, params):
    """Central differences of the scalar ``objective`` in every entry of ``params``, as the same type."""
    theta = vae.flatten(params)
    out = np.empty_like(theta)
    for k in range(len(theta)):
        e = np.zeros_like(theta)
        e[k] = H
        out[k] = (objective(vae.unflatten(theta + e, params)) - objective(vae.unflatten(theta - e, params))) / (2 * H)
    return vae.unflatten(out, params)


def assert_params_close(actual, expected):
    for name, a, e in zip(actual._fields, actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-8, err_msg=name)


# --- Data.


def test_digits_shapes_split_and_values():
    train, test = vae.digits("static")
    assert train.shape == (1438, 64) and test.shape == (359, 64) and len(train) + len(test) == 1797
    assert set(np.unique(np.concatenate([train, test]))) == {0.0, 1.0}
    prob_train, prob_test = vae.digits("dynamic")
    assert prob_train.shape == train.shape and prob_test.shape == test.shape
    assert prob_train.min() >= 0.0 and prob_train.max() == 1.0
    np.testing.assert_array_equal(train, (prob_train > 0.5).astype(float))  # pixel > 8 ⇔ pixel/16 > 1/2
    assert not train.flags.writeable


def test_the_split_is_reproducible_from_its_seed():
    from sklearn.datasets import load_digits

    a, b = vae.digits("dynamic", split_seed=3), vae.digits("dynamic", split_seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], vae.digits("dynamic", split_seed=4)[1])
    order = np.random.default_rng(3).permutation(1797)
    np.testing.assert_array_equal(a[1], load_digits().data[order[:359]] / 16.0)
    assert vae.digits(test_fraction=0.5)[1].shape == (898, 64)  # round(898.5) = 898, to even


def test_dynamic_binarisation_draws_bernoulli_pixels():
    x = vae.digits("dynamic")[0][:10]
    n = 4000
    draws = vae.binarize_batch(np.broadcast_to(x, (n, *x.shape)), np.random.default_rng(0))
    assert set(np.unique(draws)) <= {0.0, 1.0}
    se = np.sqrt(x * (1 - x) / n)
    assert (np.abs(draws.mean(axis=0) - x) <= Z * se).all()  # exact where x ∈ {0, 1}


def test_init_and_flat_round_trip():
    train = vae.digits()[0]
    p = vae.init(5, train, np.random.default_rng(0))
    assert [np.shape(a) for a in p] == [(5, 64), (5,), (64, 5), (64,), (5,)]
    m = np.clip(train.mean(axis=0), 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(vae.sigmoid(p.dec_bias), m)
    assert (p.prior_logits == 0).all() and np.abs(p.enc_weight).max() < 0.1
    theta = vae.flatten(p)
    assert theta.shape == (2 * 5 * 64 + 2 * 5 + 64,)
    np.testing.assert_array_equal(theta[:320], p.enc_weight.ravel())  # the documented order
    np.testing.assert_array_equal(theta[-5:], p.prior_logits)
    back = vae.unflatten(theta, p)
    assert type(back) is vae.VAEParams
    for a, b in zip(back, p):
        np.testing.assert_array_equal(a, b)


# --- Densities against their direct forms.


def test_densities_against_direct_products():
    rng = np.random.default_rng(1)
    p, x = random_params(L, rng, dec=0.5), batch(B)
    b = (rng.random((2, B, L)) < 0.5).astype(float)
    s = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    phi = x @ p.enc_weight.T + p.enc_bias
    q = np.prod(np.where(b == 1, s(phi), 1 - s(phi)), axis=-1)
    eta = b @ p.dec_weight.T + p.dec_bias
    lik = np.prod(np.where(x == 1, s(eta), 1 - s(eta)), axis=-1)
    prior = np.prod(np.where(b == 1, s(p.prior_logits), 1 - s(p.prior_logits)), axis=-1)
    np.testing.assert_allclose(vae.log_q(vae.encoder_logits(p, x), b), np.log(q))
    np.testing.assert_allclose(vae.log_joint(p, x, b), np.log(lik * prior))
    f = vae.integrand(p, x)
    np.testing.assert_allclose(f(b), np.log(q) - np.log(lik * prior))
    assert f(b).shape == (2, B)
    shared = b[:, :1]  # one latent vector per sample row, broadcast across the batch
    np.testing.assert_allclose(vae.log_joint(p, x, shared), vae.log_joint(p, x, np.broadcast_to(shared, b.shape)))
    g, g_full = vae.model_grads(p, x, shared), vae.model_grads(p, x, np.broadcast_to(shared, b.shape).copy())
    for a, e in zip(g, g_full):
        np.testing.assert_allclose(a, e)


def test_log_joint_is_finite_at_extreme_logits():
    p = random_params(L, np.random.default_rng(2), dec=1e4)
    x = batch(B)
    b = np.ones((1, B, L))
    assert np.isfinite(vae.log_joint(p, x, b)).all() and np.isfinite(vae.integrand(p, x).grad(b)).all()


# --- Gradients against central differences.


def test_integrand_gradient_at_relaxed_latents():
    rng = np.random.default_rng(3)
    p, x = random_params(L, rng, dec=0.5), batch(B)
    f = vae.integrand(p, x)
    b = rng.random((2, B, L))  # relaxed values in (0, 1), two sample rows
    g = f.grad(b)
    assert g.shape == (2, B, L)
    fd = np.empty_like(b)
    for idx in np.ndindex(b.shape):
        e = np.zeros_like(b)
        e[idx] = H
        fd[idx] = (f(b + e) - f(b - e))[idx[:-1]] / (2 * H)  # f of datum n depends on b[..., n, :] only
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("relaxed", [False, True], ids=["binary", "relaxed"])
def test_model_gradients(relaxed):
    rng = np.random.default_rng(4)
    p, x = random_params(L, rng, dec=0.5), batch(B)
    b = rng.random((5, B, L))
    b = b if relaxed else (b < 0.5).astype(float)
    g = vae.model_grads(p, x, b)
    fd = finite_difference(lambda q: -vae.log_joint(q, x, b).mean(), p)
    assert_params_close(g, fd)  # the encoder entries: zero in both


def test_encoder_gradients_by_the_chain_rule():
    # The batch-mean KL to the prior as a function of the encoder's weights, whose gradient in the
    # logits is σ'(φ)(φ − a) per datum.
    rng = np.random.default_rng(5)
    p, x = random_params(L, rng, dec=0.5), batch(B)
    phi = vae.encoder_logits(p, x)
    s = vae.sigmoid(phi)
    g = vae.encoder_grads(x, s * (1 - s) * (phi - p.prior_logits))
    fd = finite_difference(lambda q: vae.kl_divergence(vae.encoder_logits(q, x), p.prior_logits).mean(), p)
    fd = fd._replace(prior_logits=np.zeros(L))  # the KL's a-dependence is not routed through the logits
    assert_params_close(g, fd)


def test_the_closed_form_kl_against_enumeration():
    rng = np.random.default_rng(6)
    phi, a = 2 * rng.standard_normal((B, L)), rng.standard_normal(L)
    s = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    kl = np.zeros(B)
    for bits in itertools.product((0.0, 1.0), repeat=L):
        b = np.array(bits)
        q = np.prod(np.where(b == 1, s(phi), 1 - s(phi)), axis=-1)
        prior = np.prod(np.where(b == 1, s(a), 1 - s(a)))
        kl += q * np.log(q / prior)
    np.testing.assert_allclose(vae.kl_divergence(phi, a), kl, rtol=1e-12)


# --- The bounds.


def enumerate_elbo_and_likelihood(p, x):
    """E_q[log p(x, b) − log q(b | x)] and log Σ_b p(x, b), by direct products over every b."""
    s = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    phi = x @ p.enc_weight.T + p.enc_bias
    elbo, evidence = np.zeros(len(x)), np.zeros(len(x))
    for bits in itertools.product((0.0, 1.0), repeat=len(p.prior_logits)):
        b = np.array(bits)
        q = np.prod(np.where(b == 1, s(phi), 1 - s(phi)), axis=-1)
        eta = p.dec_weight @ b + p.dec_bias
        log_lik = np.sum(np.where(x == 1, np.log(s(eta)), np.log(1 - s(eta))), axis=-1)
        log_prior = np.sum(np.where(b == 1, np.log(s(p.prior_logits)), np.log(1 - s(p.prior_logits))))
        elbo += q * (log_lik + log_prior - np.log(q))
        evidence += np.exp(log_lik + log_prior)
    return elbo, np.log(evidence)


def test_exact_elbo_and_likelihood_against_enumeration():
    p, x = random_params(6, np.random.default_rng(7), dec=0.7), batch(5)
    elbo, log_px = enumerate_elbo_and_likelihood(p, x)
    np.testing.assert_allclose(vae.exact_elbo(p, x), elbo, rtol=1e-10)
    np.testing.assert_allclose(vae.exact_log_likelihood(p, x), log_px, rtol=1e-10)


def test_enumeration_in_chunks(monkeypatch):
    p, x = random_params(6, np.random.default_rng(8)), batch(5)
    whole = vae.exact_elbo(p, x), vae.exact_log_likelihood(p, x)
    monkeypatch.setattr(vae, "_CHUNK", 7 * 64)  # 7 configurations a chunk: 10 uneven chunks
    np.testing.assert_allclose(vae.exact_elbo(p, x), whole[0], rtol=1e-12)
    np.testing.assert_allclose(vae.exact_log_likelihood(p, x), whole[1], rtol=1e-12)
    with pytest.raises(ValueError):
        vae.exact_log_likelihood(random_params(17, np.random.default_rng(0)), x)


def test_the_bounds_order():
    rng = np.random.default_rng(9)
    p, x = random_params(8, rng, dec=1.0), batch(10, seed=1)
    log_px, exact = vae.exact_log_likelihood(p, x), vae.exact_elbo(p, x)
    assert (exact < log_px).all()
    reps = 2000
    mc = vae.elbo(p, x, reps, rng)  # mean of reps one-sample ELBOs
    one = np.array([vae.iwae_bound(p, x, 1, rng) for _ in range(reps)])
    hundred = np.array([vae.iwae_bound(p, x, 100, rng) for _ in range(200)])
    se_one = one.std(axis=0, ddof=1) / math.sqrt(reps)
    se_hundred = hundred.std(axis=0, ddof=1) / math.sqrt(len(hundred))
    assert (np.abs(one.mean(axis=0) - exact) <= Z * se_one).all()  # K = 1 is the ELBO in mean
    assert (np.abs(mc - exact) <= Z * se_one).all()  # the same estimator and size, other draws
    assert (hundred.mean(axis=0) <= log_px + Z * se_hundred).all()  # a lower bound
    # K = 100 is closer to log p(x), by more than its standard error allows for chance.
    assert (log_px - hundred.mean(axis=0) + Z * se_hundred < log_px - exact).all()


# --- The Gaussian-latent variant.


def test_gaussian_integrand_and_gradients():
    rng = np.random.default_rng(10)
    p, x = gaussian_params(L, rng), batch(B)
    mean, log_scale = vae.gaussian_encoder(p, x)
    z, eps = vae.gaussian_sample(mean, log_scale, rng, 2)
    np.testing.assert_allclose(z, mean + np.exp(log_scale) * eps)
    f = vae.gaussian_integrand(p, x)
    fd = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        e = np.zeros_like(z)
        e[idx] = H
        fd[idx] = (f(z + e) - f(z - e))[idx[:-1]] / (2 * H)
    np.testing.assert_allclose(f.grad(z), fd, rtol=1e-6, atol=1e-8)

    assert_params_close(vae.gaussian_model_grads(p, x, z),
                        finite_difference(lambda q: -vae.gaussian_log_joint(q, x, z).mean(), p))
    # The encoder chain rule, on the batch-mean closed-form KL: ∂/∂μ = μ, ∂/∂log σ = σ² − 1.
    g = vae.gaussian_encoder_grads(x, mean, np.exp(2 * log_scale) - 1)
    assert_params_close(g, finite_difference(lambda q: vae.gaussian_kl(*vae.gaussian_encoder(q, x)).mean(), p))


def test_gaussian_kl_and_elbo_against_monte_carlo():
    rng = np.random.default_rng(11)
    p, x = gaussian_params(L, rng), batch(B)
    mean, log_scale = vae.gaussian_encoder(p, x)
    z, _ = vae.gaussian_sample(mean, log_scale, rng, 20_000)
    prior = -0.5 * (z * z).sum(-1) - 0.5 * L * math.log(2 * math.pi)
    kl = vae.gaussian_log_q(mean, log_scale, z) - prior
    se = kl.std(axis=0, ddof=1) / math.sqrt(len(kl))
    assert (np.abs(kl.mean(axis=0) - vae.gaussian_kl(mean, log_scale)) <= Z * se).all()
    neg = vae.gaussian_integrand(p, x)(z)  # −ELBO per sample, against the closed-form-KL ELBO
    est = vae.gaussian_elbo(p, x, 20_000, np.random.default_rng(12))
    se = neg.std(axis=0, ddof=1) / math.sqrt(len(neg))
    assert (np.abs(-neg.mean(axis=0) - est) <= 2 * Z * se).all()  # two independent means


# --- The problem the suite trains (problem=binary_vae).


@pytest.mark.parametrize("key, value", [("latents", 0), ("latents", 2.5), ("binarize", "dither"), ("batch", 0),
                                        ("batch", 5000), ("test_samples", 0), ("latent", "poisson"),
                                        ("test_fraction", 1.0), ("split_seed", -1)])
def test_the_problem_refuses_a_bad_key_in_one_line(key, value):
    from problems.binary_vae import BinaryVAE

    with pytest.raises(ValueError, match=rf"^invalid problem\.{key}=") as err:
        BinaryVAE(**{key: value})
    assert "\n" not in str(err.value) and "allowed: " in str(err.value)


def test_the_problem_is_trainable_with_one_distribution_per_datum():
    from problems.base import Trainable
    from problems.binary_vae import BinaryVAE

    for latent, width in (("bernoulli", 7), ("gaussian", 14)):
        problem = BinaryVAE(latents=7, batch=9, latent=latent)
        assert isinstance(problem, Trainable) and problem.family.batch_shape == (9,)
        theta = problem.init(np.random.default_rng(0))
        x = next(problem.minibatches(np.random.default_rng(1)))
        f, params = problem.integrand(theta, x)
        assert x.shape == (9, 64) and np.shape(params[0]) == (9, 7)
        g = np.random.default_rng(2).standard_normal((9, width))
        assert problem.encoder_grad(x, g, params).shape == (width * 65,)


def test_dynamic_minibatches_are_binary_and_fresh():
    from problems.binary_vae import BinaryVAE

    batches = BinaryVAE(binarize="dynamic", batch=20).minibatches(np.random.default_rng(0))
    one, two = next(batches), next(batches)
    assert set(np.unique(one)) <= {0.0, 1.0} and one.shape == (20, 64) and not np.array_equal(one, two)
