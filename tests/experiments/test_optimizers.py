"""Optimizers: SGD's step is α·ĝ; Adam's first step is α·sign(ĝ), then follows its moment recursion."""

from __future__ import annotations

import numpy as np

from experiments import optimizers


def test_sgd_step():
    opt = optimizers.sgd()
    delta, state = opt.update(np.array([2.0, -4.0]), opt.init(np.zeros(2)), 0.1)
    np.testing.assert_array_equal(delta, 0.1 * np.array([2.0, -4.0]))


def test_adam_steps_against_its_recursion():
    opt = optimizers.adam(beta1=0.9, beta2=0.999, eps=1e-8)
    state = opt.init(np.zeros(2))
    g1, g2 = np.array([3.0, -0.01]), np.array([1.0, 0.02])
    delta, state = opt.update(g1, state, 0.1)
    np.testing.assert_allclose(delta, 0.1 * np.sign(g1), rtol=1e-6)  # m̂ = g, v̂ = g²
    delta, state = opt.update(g2, state, 0.1)
    m = 0.9 * 0.1 * g1 + 0.1 * g2
    v = 0.999 * 0.001 * g1**2 + 0.001 * g2**2
    np.testing.assert_allclose(delta, 0.1 * (m / (1 - 0.81)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8))
    assert state[0] == 2
