"""Test problems: an integrand f, the distribution family q_θ it is studied under, a start θ₀,
and what is known about it exactly."""
