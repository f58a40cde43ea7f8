"""Where a run's configuration enters: validation, building objects, and its identity.

:func:`validate` is called once per job config before anything touches the tracking store:
by the run for a single job, and by the sweeper for every job of a multirun up front.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
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
    "estimator.temperature": (lambda v: _real(v) and math.isfinite(v) and v > 0, "a finite number > 0"),
    "estimator.eta": (lambda v: _real(v) and math.isfinite(v), "a finite number"),
    "estimator.baseline.decay": (lambda v: _real(v) and 0 < v < 1, "a number in (0, 1)"),
    "estimator.baseline.pilot": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
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
    check_options(cfg)
    check_memory(cfg)
    _check_combinations(cfg)


def memory_needed(cfg: DictConfig) -> tuple[int, list[str]]:
    """A lower bound, in bytes, on the memory a run's arrays take, and the keys that drive it.

    With T = ``steps``, V = ``variance_samples``, N = ``samples`` and d = ``problem.dim`` (1
    where the problem has no such key: every problem learns one number at least), float64:
    the trajectory θ_0 … θ_T, (T + 1)·d values, its distances and the estimator's state per
    step, 2·(T + 1) more (problems with a ``dim`` key: the others keep logged steps only);
    and a variance probe, V·N estimates of d numbers and as many base-noise draws, 2·V·N·d.
    Everything else (the estimator's own temporaries, Python, numpy, MLflow) comes on top.
    """
    steps, probes, samples = (OmegaConf.select(cfg, k, default=None) for k in ("steps", "variance_samples", "samples"))
    if not all(_int(v) for v in (steps, probes, samples)):
        return 0, []
    dim = OmegaConf.select(cfg, "problem.dim", default=None)
    has_dim = _int(dim)
    d = dim if has_dim else 1
    trajectory = (steps + 1) * (d + 2) if has_dim else 0
    probe = 2 * probes * samples * d
    dims = ["problem.dim"] if has_dim else []
    keys = (["steps", *dims] if trajectory >= probe else ["variance_samples", "samples", *dims])
    return 8 * (trajectory + probe), keys


def available_memory() -> int | None:
    """Bytes the kernel reports as available to new processes (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.3g} TB"


def check_memory(cfg: DictConfig) -> None:
    """Refuse a run whose arrays cannot fit in the memory available now (:func:`memory_needed`)."""
    needed, keys = memory_needed(cfg)
    free = available_memory()
    if free is None or needed <= free:
        return
    values = ", ".join(f"{k}={OmegaConf.select(cfg, k)}" for k in keys)
    raise ConfigError(f"invalid {values}: the run's arrays need at least {_size(needed)} of memory, "
                      f"{_size(free)} available (MemAvailable); allowed: values whose arrays fit "
                      "(fewer steps, samples, variance_samples or dimensions)")


# Keys of a ``_target_`` node that are not arguments of the target.
_NOT_ARGUMENTS = ("name",)


def check_options(cfg: DictConfig) -> None:
    """Refuse an option that the ``_target_`` of its node does not accept, in one line naming
    the options it does: built-in or one's own (``hydra.searchpath``), an estimator's or a
    problem's YAML is checked against its function's or class's signature before it is built."""
    for top in cfg:
        if top in ("hydra", "tracking") or not isinstance(cfg[top], DictConfig):
            continue
        _check_node(OmegaConf.to_container(cfg[top], resolve=False), str(top))


def _check_node(node: dict, where: str) -> None:
    target = node.get("_target_")
    if isinstance(target, str):
        try:
            accepted = _arguments(target)
        except (ImportError, AttributeError) as err:
            reason = " ".join(str(err).split())[:200]
            raise ConfigError(f"invalid {where}._target_={target}: cannot import it ({reason}); "
                              "allowed: an importable function or class (module.name)") from None
        if accepted is not None:
            for key, value in node.items():
                # A configured function's option that is itself built (a baseline, a control
                # variate) wraps the function (estimators.configure): not an argument.
                wrapper = node.get("_partial_") and isinstance(value, dict) and "_target_" in value
                special = key.startswith("_") and key.endswith("_")  # _target_, _partial_, …
                if not (key in accepted or key in _NOT_ARGUMENTS or wrapper or special):
                    names = ", ".join(sorted(a for a in accepted if a not in _CALL_TIME)) or "none"
                    raise ConfigError(f"invalid {where}.{key}: {target} takes no option {key}; allowed: {names}")
    for key, value in node.items():
        if isinstance(value, dict):
            _check_node(value, f"{where}.{key}")


# The arguments an estimator receives at each call, not from its config.
_CALL_TIME = ("f", "family", "params", "rng", "num_samples", "state")


@functools.lru_cache(maxsize=256)
def _arguments(target: str) -> frozenset[str] | None:
    """The argument names ``target`` accepts by keyword; None if it takes ``**kwargs`` (or
    has no signature to read). Raises ImportError or AttributeError if it cannot be found."""
    try:
        parameters = inspect.signature(_locate(target)).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _locate(path: str) -> Any:
    """The object at dotted ``path``: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name and module.startswith(err.name):  # this prefix is no module: a shorter one may be
                continue
            raise  # the module exists but imports one that does not: say which
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(f"No module named {parts[0]!r}")


def _check_combinations(cfg: DictConfig) -> None:
    """Constraints between keys: the leave-one-out baseline needs independent samples, two or
    more; the estimator and scheme must apply to the problem's family (and the problem checks
    its own keys as it is built)."""
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
    if all(k in cfg for k in ("estimator", "problem")):
        check_applies(cfg)


def _node(cfg: DictConfig, key: str) -> Any:
    node = OmegaConf.select(cfg, key, default=None)
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def check_applies(cfg: DictConfig) -> None:
    """Refuse an estimator, wrapper, sampling scheme or ``learn_scale`` that does not apply to
    the problem's distribution family, naming the estimators that do."""
    key = json.dumps([_node(cfg, k) for k in ("estimator", "problem", "sampling", "learn_scale")], sort_keys=True)
    reason = _inapplicable(key)
    if reason is None:
        return
    name, estimator = cfg.problem.get("name", "?"), cfg.estimator.get("name", "?")
    if reason.startswith("learn_scale"):
        raise ConfigError(f"invalid learn_scale=true with problem={name}: allowed: false ({reason})")
    problem, family = _family_of(cfg)
    sampling = _node(cfg, "sampling.name") or "independent"
    fits = [name for name, est in estimator_options() if _applies(est, family, sampling, problem)]
    raise ConfigError(f"invalid estimator={estimator} with problem={name}: {reason}; "
                      f"allowed: estimator={','.join(fits) or '(none with this sampling)'}")


def _family_of(cfg: DictConfig):
    """The problem ``cfg`` names, and its family with the blocks ``cfg`` learns."""
    import estimators

    problem = build(cfg.problem)
    family = problem.family
    if cfg.get("learn_scale", False):
        family = estimators.families.with_learned(family, ("scale",))
    return problem, family


@functools.lru_cache(maxsize=256)
def _inapplicable(key: str) -> str | None:
    """Why the configuration in ``key`` (estimator, problem, sampling, learn_scale) does not apply, or None.

    Raises :class:`ConfigError` for a problem that refuses one of its own keys."""
    import estimators

    estimator_node, problem_node, sampling_node, learn_scale = json.loads(key)
    try:
        problem = build(OmegaConf.create(problem_node))
    except Exception as err:  # a problem checks its own keys (problems.base.require)
        cause = err.__cause__ if err.__cause__ is not None else err
        if isinstance(cause, ValueError) and str(cause).startswith("invalid "):
            raise ConfigError(str(cause)) from None
        raise
    family = problem.family
    if learn_scale:
        try:
            family = estimators.families.with_learned(family, ("scale",))
        except ValueError:
            return f"learn_scale applies to families with a scale block (gaussian), not {family.name}"
    sampling = (sampling_node or {}).get("name", "independent")
    try:
        estimators.check(estimators.configure(build(OmegaConf.create(estimator_node))), family, sampling, f=problem)
    except estimators.Inapplicable as err:
        return str(err)
    return None


def _applies(estimator, family, sampling: str, problem) -> bool:
    import estimators

    try:
        estimators.check(estimator, family, sampling, f=problem)
    except estimators.Inapplicable:
        return False
    return True


@functools.cache
def estimator_options() -> list[tuple[str, Any]]:
    """(name, built estimator) of every option of the ``estimator`` group in conf/, for messages."""
    import estimators

    group = PROJECT_ROOT / "conf" / "estimator"
    out = []
    for path in sorted(group.glob("*.yaml")):
        try:
            out.append((path.stem, estimators.configure(build(_with_defaults(group, path.stem)))))
        except Exception:  # an option this listing cannot compose alone: left out of the message only
            continue
    return out


def _with_defaults(group: Path, name: str) -> DictConfig:
    """Option ``name`` of a config group with its defaults list applied (same-group bases and
    nested groups, ``override`` included): enough to build it outside a Hydra app."""
    node = OmegaConf.load(group / f"{name}.yaml")
    defaults = node.pop("defaults", [])
    merged = OmegaConf.create({})
    for entry in defaults:
        if entry == "_self_":
            merged = OmegaConf.merge(merged, node)
        elif isinstance(entry, str):
            merged = OmegaConf.merge(merged, _with_defaults(group, entry))
        else:
            ((sub, choice),) = entry.items()
            sub = sub.removeprefix("override ").strip()
            merged = OmegaConf.merge(merged, {sub: OmegaConf.load(group / sub / f"{choice}.yaml")})
    return OmegaConf.merge(merged, node) if "_self_" not in defaults else merged


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
_TRACKING_ONLY = ("tracking.uri", "tracking.parent_run_id", "tracking.sweep_id", "tracking.progress")


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


def _plain(data: Any) -> Any:
    """``data`` without underscored keys (``_target_``, ``_partial_``, a preset's ``_sweep_``) at any depth."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items() if not (k.startswith("_") and k.endswith("_"))}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def config_hash(cfg: DictConfig) -> str:
    """Identity of what a run computes: a hash of its resolved config minus ``tracking``.

    Underscored keys are left out at any depth: where code lives (``_target_``) and how it
    is built (``_partial_``) are not what a run computes, so moving code re-runs nothing.
    """
    data = resolved(cfg)
    data.pop("tracking", None)
    data = _plain(data)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
