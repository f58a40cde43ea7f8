"""Sweep plumbing: composition shared between a sweep's jobs, and interrupts. Knows nothing of any
estimator or problem."""
