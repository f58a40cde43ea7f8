"""What one training step of problem=binary_vae costs against its matrix products alone.

    python benchmarks/bench_vae.py

For L = 20 and 200 latents, a minibatch of B = 50 digits (D = 64), N = 1 sample: the time of one
step of the loop (``experiments.training.gradient`` and an Adam update) over the time of the
matrix products such a step cannot avoid: the encoder's x W_eᵀ (B×D by D×L), the decoder's
b W_dᵀ on every point f is evaluated at (the estimator's declared evaluations per datum, each
B×L by L×D), the decoder's gradient rᵀb (D×B by B×L) and the encoder's chain rule gᵀx (L×B by
B×D). Target <= 2. Best of several repeats; only the ratios are meant to be read.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import estimators  # noqa: E402
from estimators import arm, relaxed  # noqa: E402
from experiments import optimizers  # noqa: E402
from experiments.training import gradient  # noqa: E402
from problems.binary_vae import BinaryVAE  # noqa: E402

ESTIMATORS = {"score_function": estimators.score_function, "disarm": arm.disarm, "rebar": relaxed.rebar,
              "gumbel_softmax": relaxed.gumbel_softmax}


def best(fn, number: int, repeat: int = 7) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def main() -> None:
    print("one training step / its matrix products alone, B = 50, N = 1 (target <= 2)")
    for latents in (20, 200):
        problem = BinaryVAE(latents=latents)
        theta = problem.init(np.random.default_rng(0))
        x = problem.probe_batch
        rng = np.random.default_rng(1)
        adam = optimizers.adam()
        state = adam.init(theta)
        f, params = problem.integrand(theta, x)
        p = problem._params(theta)
        for name, estimator in ESTIMATORS.items():
            evals = int(estimators.evaluations(estimator, problem.family, params, 1))
            b = (rng.random((evals * x.shape[0], latents)) < 0.5).astype(float)
            r = rng.random((x.shape[0], x.shape[1]))
            g = rng.random((x.shape[0], latents))

            def products():
                x @ p.enc_weight.T
                b @ p.dec_weight.T
                r.T @ b[: x.shape[0]]
                g.T @ x

            def step():
                grad = gradient(problem, estimator, theta, x, rng, 1)[0]
                adam.update(grad, state, 1e-3)

            reference, total = best(products, 200), best(step, 50)
            print(f"   L={latents:<4d} {name:16s} {total / reference:6.2f}   "
                  f"({total * 1e6:.0f} µs against {reference * 1e6:.0f} µs)")


if __name__ == "__main__":
    main()
