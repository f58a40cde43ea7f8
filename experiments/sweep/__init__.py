"""Sweep plumbing: composition shared between a sweep's jobs, parallel workers started ahead,
and interrupts. Knows nothing of any estimator or problem."""
