"""Monte Carlo gradient estimators: pure functions with one shared signature, over distribution families.

See :mod:`estimators.core` for the signature, :mod:`estimators.families` for the families
(Gaussian, Bernoulli, Categorical; Gamma, Beta, Dirichlet with implicit
reparameterization, :mod:`estimators.special`); :mod:`estimators.arm` (ARM, DisARM) and
:mod:`estimators.relaxed` (Gumbel-softmax, straight-through, REBAR) for the discrete ones; variance reduction wraps an estimator (:mod:`estimators.baselines`,
:mod:`estimators.control_variates`), sampling schemes are :mod:`estimators.sampling`.
"""

# `arm` is the module of ARM and DisARM (estimators.arm.arm, estimators.arm.disarm), as configs name them.
from estimators import arm, baselines, control_variates, families, relaxed, sampling
from estimators.core import (
    Estimator,
    Inapplicable,
    Integrand,
    biased,
    check,
    configure,
    core,
    describe,
    evaluations,
    initial_state,
    options,
    sample_shape,
    spec,
)
from estimators.families import (
    Bernoulli,
    BernoulliParams,
    Beta,
    BetaParams,
    Categorical,
    CategoricalParams,
    Dirichlet,
    DirichletParams,
    Family,
    Gamma,
    GammaParams,
    Gaussian,
    GaussianParams,
)
from estimators.measure_valued import measure_valued
from estimators.reparameterization import reparameterization
from estimators.score_function import score_function

__all__ = [
    "Bernoulli",
    "BernoulliParams",
    "Beta",
    "BetaParams",
    "Categorical",
    "CategoricalParams",
    "Dirichlet",
    "DirichletParams",
    "Estimator",
    "Family",
    "Gamma",
    "GammaParams",
    "Gaussian",
    "GaussianParams",
    "Inapplicable",
    "Integrand",
    "arm",
    "baselines",
    "biased",
    "check",
    "configure",
    "control_variates",
    "core",
    "describe",
    "evaluations",
    "families",
    "initial_state",
    "measure_valued",
    "options",
    "relaxed",
    "reparameterization",
    "sample_shape",
    "sampling",
    "score_function",
    "spec",
]
