"""A problem that raises at run time for one distance: a job that fails after validation."""

from __future__ import annotations

from dataclasses import dataclass

from problems.quadratic import Quadratic


@dataclass(frozen=True)
class FailsAtDistanceTen(Quadratic):
    def _check(self):
        if self.distance == 10:
            raise RuntimeError("simulated failure inside a job")

    def __call__(self, z):
        self._check()
        return super().__call__(z)

    def grad(self, z):
        self._check()
        return super().grad(z)
