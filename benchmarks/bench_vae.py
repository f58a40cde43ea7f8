"""What one training step of problem=binary_vae costs against its matrix products alone.

    python benchmarks/bench_vae.py

For L = 20 and 200 latents, a minibatch of B = 50 digits (D = 64), N = 1 sample: the time of one
step of the loop (``experiments.training.gradient`` and an Adam update) over the time of the
matrix products such a step cannot avoid: the encoder's x W_eᵀ (B×D by D×L), the decoder's
b W_dᵀ on every point f is evaluated at (the estimator's declared evaluations per datum, each
B×L by L×D), the decoder's gradient rᵀb (D×B by B×L) and the encoder's chain rule gᵀx (L×B by
B×D). Target <= 2. Best of several repeats; only the ratios are meant to be read.

Under each ratio, where the step's time goes (µs, each part timed on its own, best of repeats):
the matrix products above; the transcendental elementwise work (e^{−|η|} and log1p over the
decoder's logits at every evaluation, B×D each, a tanh over the B×L encoder logits for the
sample and the score); the optimizer (Adam's update of θ); and the remainder, many small numpy
calls and the Python between them. Then, partitioning the step instead: the estimator's call
(as the loop measures it) and everything outside it (the integrand's set-up, the replay of the
samples, the backward pass, the optimizer). The products and transcendentals fall in both.
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

            eta = rng.standard_normal((evals * x.shape[0], x.shape[1]))
            logits = rng.standard_normal((x.shape[0], latents))

            def transcendentals():
                np.log1p(np.exp(-np.abs(eta)))
                np.tanh(logits)

            calls = []

            def step():
                grad, _, seconds = gradient(problem, estimator, theta, x, rng, 1)
                calls.append(seconds)
                adam.update(grad, state, 1e-3)

            grad = gradient(problem, estimator, theta, x, rng, 1)[0]
            reference, elementwise = best(products, 50, 21), best(transcendentals, 50, 21)
            optimizer = best(lambda: adam.update(grad, state, 1e-3), 200)
            total = best(step, 50)
            calls.sort()
            call = calls[len(calls) // 10]  # a low decile: the best-of analogue for single calls
            print(f"   L={latents:<4d} {name:16s} {total / reference:6.2f}   "
                  f"({total * 1e6:.0f} µs against {reference * 1e6:.0f} µs)")
            print(f"{'':27s}products {reference * 1e6:.0f} + transcendentals {elementwise * 1e6:.0f} "
                  f"+ optimizer {optimizer * 1e6:.0f} + rest {(total - reference - elementwise - optimizer) * 1e6:.0f}"
                  f" µs;  estimator call {call * 1e6:.0f}, outside it {(total - call) * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
