"""Where a run's configuration enters: validation, building objects, and its identity.

:func:`validate` is called once per job config before anything touches the tracking store:
by the run for a single job, and by the sweeper for every job of a multirun up front.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# `${project_root:}` in conf/ resolves to the checkout, wherever Hydra runs the job.
OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)


class ConfigError(ValueError):
    """An invalid config value; its message is one line naming key, value and what is allowed."""


def refuse(message: str) -> NoReturn:
    """Exit with ``message`` as one line on stderr and status 2 (a usage error)."""
    print(f"mcgrad-bench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _text(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


# key -> (predicate, what is allowed); keys absent from a config are not checked.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "step_size": (lambda v: _real(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
    "steps": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "samples": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "seed": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "variance_samples": (lambda v: _int(v) and v >= 2, "an integer >= 2"),
    "log_points": (lambda v: _int(v) and v >= 2, "an integer >= 2"),
    "tolerance": (lambda v: _real(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
    "divergence_factor": (lambda v: _real(v) and math.isfinite(v) and v > 1, "a finite number > 1"),
    "problem.distance": (lambda v: _real(v) and math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "problem.dim": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "problem.sigma": (lambda v: _real(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
    "learn_scale": (lambda v: isinstance(v, bool), "true or false"),
    "estimator.coupling": (lambda v: isinstance(v, bool), "true or false"),
    "estimator.baseline.decay": (lambda v: _real(v) and 0 < v < 1, "a number in (0, 1)"),
    "estimator.baseline.pilot": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "problem.f": (lambda v: v in ("square", "exp", "cos"), "one of square, exp, cos"),
    "problem.k": (lambda v: _real(v) and math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "problem.mu0": (lambda v: _real(v) and math.isfinite(v), "a finite number"),
    "problem.sigma0": (lambda v: _real(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
    "optimizer.beta1": (lambda v: _real(v) and 0 <= v < 1, "a number in [0, 1)"),
    "optimizer.beta2": (lambda v: _real(v) and 0 <= v < 1, "a number in [0, 1)"),
    "optimizer.eps": (lambda v: _real(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
    "problem.prior_scale": (lambda v: _real(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
    "problem.test_fraction": (lambda v: _real(v) and 0 < v < 1, "a number in (0, 1)"),
    "problem.split_seed": (lambda v: _int(v) and v >= 0, "an integer >= 0"),
    "tracking.uri": (_text, "an MLflow tracking URI (non-empty)"),
    "tracking.experiment": (_text, "a non-empty experiment name"),
}


_ABSENT = object()


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first value outside its allowed range."""
    for key, (ok, allowed) in RULES.items():
        try:
            value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
        except Exception as err:  # an interpolation that cannot resolve, a missing value
            raise ConfigError(f"invalid {key}: {err}; allowed: {allowed}") from None
        if value is _ABSENT:
            continue
        if not ok(value):
            raise ConfigError(f"invalid {key}={value!r}: allowed: {allowed}")
    _check_combinations(cfg)


def _check_combinations(cfg: DictConfig) -> None:
    """Constraints between keys: the leave-one-out baseline needs independent samples, two or more."""
    samples = OmegaConf.select(cfg, "samples", default=None)
    if not _int(samples):
        return
    baseline = OmegaConf.select(cfg, "estimator.baseline.name", default=None)
    if baseline == "leave_one_out" and samples < 2:
        raise ConfigError(
            f"invalid estimator/baseline=leave_one_out with samples={samples}: allowed: samples >= 2 "
            "(each sample's baseline is the mean of the others)"
        )
    scheme = OmegaConf.select(cfg, "sampling.name", default="independent")
    if baseline == "leave_one_out" and scheme != "independent":
        raise ConfigError(
            f"invalid estimator/baseline=leave_one_out with sampling={scheme}: allowed: sampling=independent "
            "(the other samples of an antithetic or QMC set depend on this one, which would bias it)"
        )


def _unnamed(data: Any) -> Any:
    """``data`` without the ``name`` label of every node that has a ``_target_`` (nested too)."""
    if isinstance(data, dict):
        return {k: _unnamed(v) for k, v in data.items() if not (k == "name" and "_target_" in data)}
    if isinstance(data, list):
        return [_unnamed(v) for v in data]
    return data


def build(node: DictConfig) -> Any:
    """Instantiate a config group node (``_target_``); ``name`` labels a node and is not passed.

    Partials come back as plain :class:`functools.partial` (or the bare function), so a
    call in a hot loop does not pay Hydra's per-call target checks.
    """
    obj = instantiate(_unnamed(OmegaConf.to_container(node, resolve=True)), _convert_="all")
    if isinstance(obj, functools.partial):
        if not obj.args and not obj.keywords:
            return obj.func
        return functools.partial(obj.func, *obj.args, **obj.keywords)
    return obj


# Query parameters that carry secrets in tracking URIs (tokens, passwords, signatures).
_SECRET_QUERY = re.compile(r"token|pass|secret|key|sig|auth|cred", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """``uri`` with the password or token of its user-info part, and secret-looking query
    values (``?token=…``), replaced by ``***``."""
    parts = urlsplit(uri)
    netloc = parts.netloc
    if parts.password is not None or "@" in netloc:
        host = netloc.rsplit("@", 1)[-1]
        user = parts.username
        netloc = f"{user}:***@{host}" if user and parts.password is not None else f"***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_QUERY.search(k) for k, _ in pairs):
            query = urlencode([(k, "***" if _SECRET_QUERY.search(k) else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return uri
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def hide_credentials(argv: list[str]) -> list[str]:
    """Move a ``tracking.uri=`` override that carries credentials out of ``argv``.

    The URI goes to ``MLFLOW_TRACKING_URI``, which the config reads, so Hydra never sees it:
    Hydra writes command-line overrides in clear into its output folders and logs.
    """
    kept = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        value = value.strip("'\"")
        if sep and key.lstrip("+") == "tracking.uri" and "," not in value and redact_uri(value) != value:
            os.environ["MLFLOW_TRACKING_URI"] = value
        else:
            kept.append(arg)
    return kept


# Keys that say where a run is logged, not what it computes.
_TRACKING_ONLY = ("tracking.uri", "tracking.parent_run_id", "tracking.sweep_id")


def resolved(cfg: DictConfig) -> dict:
    """The resolved config as plain data, with the tracking URI's credentials removed."""
    if "hydra" in cfg:  # in configs the sweeper composes, not in a job's; needs a job to resolve
        cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    data = OmegaConf.to_container(cfg, resolve=True)
    if isinstance(data.get("tracking"), dict) and data["tracking"].get("uri"):
        data["tracking"]["uri"] = redact_uri(str(data["tracking"]["uri"]))
    return data


def flatten(data: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted (key, value) pairs of nested dicts; ``_target_``-style keys are left out."""
    for key, value in data.items():
        if key.startswith("_") and key.endswith("_"):
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten(value, dotted + ".")
        else:
            yield dotted, value


def params(cfg: DictConfig) -> dict[str, str]:
    """The flattened resolved config as MLflow params (tracking location left out)."""
    return {k: str(v) for k, v in flatten(resolved(cfg)) if k not in _TRACKING_ONLY}


def config_hash(cfg: DictConfig) -> str:
    """Identity of what a run computes: a hash of its resolved config minus ``tracking``."""
    data = resolved(cfg)
    data.pop("tracking", None)
    # Underscored keys are bookkeeping (a preset's `_sweep_` grid), not what the run computes.
    data = {k: v for k, v in data.items() if not (k.startswith("_") and k.endswith("_"))}
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
