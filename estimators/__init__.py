"""Monte Carlo gradient estimators: pure functions with one shared signature.

See :mod:`estimators.gaussian` for the signature and the maths.
"""

from estimators.gaussian import Estimator, Integrand, reparameterization, score_function

__all__ = ["Estimator", "Integrand", "reparameterization", "score_function"]
