"""What the implicit reparameterization costs, as ratios measured within one invocation.

    python benchmarks/bench_families.py

1. ∂x/∂α of a Gamma(α, 1) variate at fixed u (``estimators.special.gamma_sample_grad``) /
   drawing the variate (``scipy.special.gammaincinv``), 10^5 uniforms, per α and for mixed α
   (target <= 1: the derivative should not cost more than the sample it differentiates)
2. one single-sample pathwise estimate / one score-function estimate, N = 10^5, on each of the
   Gamma, Beta and Dirichlet families (d = 3): what the implicit derivative adds to a draw

Best of several repeats; only the ratios are meant to be read (timings depend on the machine).
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

import numpy as np
from scipy.special import gammaincinv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import estimators  # noqa: E402
from estimators import Beta, BetaParams, Dirichlet, DirichletParams, Gamma, GammaParams  # noqa: E402
from estimators.special import gamma_sample_grad  # noqa: E402


def best(fn, repeat: int = 7) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def derivative_against_sampling() -> None:
    rng = np.random.default_rng(0)
    u = rng.random(100_000)
    cases = {f"alpha={a:g}": np.full(u.size, a) for a in (0.01, 0.5, 2.0, 50.0, 1000.0)}
    cases["alpha mixed in [0.1, 100]"] = 10.0 ** rng.uniform(-1.0, 2.0, u.size)
    print("1. gamma_sample_grad / gammaincinv, 1e5 elements (target <= 1)")
    for name, a in cases.items():
        x = gammaincinv(a, u)
        sample, grad = best(lambda: gammaincinv(a, u)), best(lambda: gamma_sample_grad(a, x))
        print(f"   {name:28s} {grad / sample:5.2f}   ({grad * 1e3:.1f} ms against {sample * 1e3:.1f} ms)")


class Square:
    """f(z) = Σ_j (z_j − 0.3)²."""

    def __call__(self, z):
        return ((z - 0.3) ** 2).sum(axis=-1)

    def grad(self, z):
        return 2.0 * (z - 0.3)


def pathwise_against_score() -> None:
    families = {
        "gamma": (Gamma(), GammaParams(np.array([0.5, 2.0, 7.0]), np.array([1.0, 2.0, 0.5]))),
        "beta": (Beta(), BetaParams(np.array([0.5, 2.0, 7.0]), np.array([1.5, 0.7, 3.0]))),
        "dirichlet": (Dirichlet(), DirichletParams(np.array([0.5, 2.0, 7.0]))),
    }
    print("2. pathwise / score-function estimate, N = 1e5, d = 3")
    for name, (family, params) in families.items():
        def run(estimator):
            return lambda: estimator(Square(), family, params, np.random.default_rng(1), 100_000)

        path, score = best(run(estimators.reparameterization)), best(run(estimators.score_function))
        print(f"   {name:28s} {path / score:5.2f}   ({path * 1e3:.1f} ms against {score * 1e3:.1f} ms)")


if __name__ == "__main__":
    derivative_against_sampling()
    pathwise_against_score()
