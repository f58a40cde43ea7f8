"""Monte Carlo gradient estimators: pure functions with one shared signature, over distribution families.

See :mod:`estimators.core` for the signature, :mod:`estimators.families` for the families
(Gaussian, Bernoulli); variance reduction wraps an estimator (:mod:`estimators.baselines`,
:mod:`estimators.control_variates`), sampling schemes are :mod:`estimators.sampling`.
"""

from estimators import baselines, control_variates, families, sampling
from estimators.core import (
    Estimator,
    Inapplicable,
    Integrand,
    biased,
    check,
    configure,
    core,
    describe,
    initial_state,
    options,
    sample_shape,
    spec,
)
from estimators.families import Bernoulli, BernoulliParams, Family, Gaussian, GaussianParams
from estimators.measure_valued import measure_valued
from estimators.reparameterization import reparameterization
from estimators.score_function import score_function

__all__ = [
    "Bernoulli",
    "BernoulliParams",
    "Estimator",
    "Family",
    "Gaussian",
    "GaussianParams",
    "Inapplicable",
    "Integrand",
    "baselines",
    "biased",
    "check",
    "configure",
    "control_variates",
    "core",
    "describe",
    "families",
    "initial_state",
    "measure_valued",
    "options",
    "reparameterization",
    "sample_shape",
    "sampling",
    "score_function",
    "spec",
]
