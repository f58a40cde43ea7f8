"""Monte Carlo gradient estimators: pure functions with one shared signature.

See :mod:`estimators.gaussian` for the signature and the maths; variance reduction composes
by argument: :mod:`estimators.sampling` (schemes), :mod:`estimators.baselines` and
:mod:`estimators.control_variates` (for the score function).
"""

from estimators import baselines, control_variates, sampling
from estimators.gaussian import (
    Estimator,
    Integrand,
    initial_state,
    options,
    reparameterization,
    sample_shape,
    score_function,
)
from estimators.measure_valued import measure_valued

__all__ = [
    "Estimator",
    "Integrand",
    "baselines",
    "control_variates",
    "initial_state",
    "measure_valued",
    "options",
    "reparameterization",
    "sample_shape",
    "sampling",
    "score_function",
]
