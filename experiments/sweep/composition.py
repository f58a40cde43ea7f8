"""Compose a sweep's job configs without recomposing what the jobs share.

Hydra composes every job of a sweep from scratch: it rebuilds the defaults list, reloads
and merges every config file, then applies the job's overrides. A grid point usually
differs from the others only in plain values (``seed=3``, ``problem.distance=10``), and
Hydra applies those last, to the composed config, with
``ConfigLoaderImpl._apply_overrides_to_config``. So a job's config equals the config
composed with its *structural* overrides alone (config groups, packages, ``hydra.*``),
with its value overrides then applied the same way; :class:`SharedCompositionLoader`
composes each distinct set of structural overrides once per process and derives the jobs
from it. ``tests/experiments/test_composition.py`` checks the result equals Hydra's own,
key for key, including the ``hydra`` node.

Hydra's ``run_job`` also keeps two full copies of each job's config on its ``JobReturn``
(about 0.2 MB a job), which launchers hold until their batch ends and parallel ones send
back to the sweeping process; :class:`ReleaseJobConfigs` drops them as the job ends.

Both rest on names private to Hydra (:data:`PRIVATE`, and attributes of the loader and
callbacks it passes in), which move without notice: when one is gone,
:func:`share_composition` leaves that part to Hydra (same configs; slower sweeps, or more
memory) and logs one warning.
"""

from __future__ import annotations

import copy
import functools
import importlib
import io
import logging
import pickle
import sys
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

# Hydra's private names that shared composition calls: (module, attribute path).
PRIVATE = (
    ("hydra._internal.config_loader_impl", "ConfigLoaderImpl._apply_overrides_to_config"),
    ("hydra._internal.config_loader_impl", "get_overrides_dirname"),
)
COMPOSED_IN_FULL = "every job is composed in full, as Hydra does (slower)"
CONFIGS_KEPT = "job configs are kept until their batch ends (more memory)"


def _resolve(module: str, path: str) -> Optional[Any]:
    """``module``'s attribute at the dotted ``path``, or None if the module or any step is gone."""
    try:
        obj: Any = importlib.import_module(module)
    except ImportError:
        return None
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


@functools.lru_cache(maxsize=None)
def _private() -> Tuple[Optional[Tuple[Callable[..., Any], ...]], Tuple[str, ...]]:
    """(the objects named in :data:`PRIVATE`, or None if any is gone; the full names of those gone)."""
    found = [_resolve(module, path) for module, path in PRIVATE]
    missing = tuple(f"{m}.{p}" for (m, p), f in zip(PRIVATE, found) if f is None)
    return (None if missing else tuple(found)), missing


def _missing_for(loader: Any) -> List[str]:
    """What shared composition needs that Hydra, or its config ``loader``, no longer has."""
    missing = list(_private()[1])
    if not callable(getattr(getattr(loader, "repository", None), "group_exists", None)):
        missing.append(f"{type(loader).__qualname__}.repository.group_exists")
    return missing


_WARNED = False


def _warn(gone: Dict[str, str]) -> None:
    """Log what is gone and what it costs, ``{name: effect}``, once per process (not once per job)."""
    global _WARNED
    if gone and not _WARNED:
        _WARNED = True
        log.warning(
            "Hydra no longer has %s. Results are the same; see Maintenance in the README.",
            "; ".join(f"{name}: {effect}" for name, effect in gone.items()),
        )


def share_composition(context: HydraContext) -> HydraContext:
    """``context`` with a loader that shares composition between a sweep's jobs, and jobs that
    drop their configs as they end; what needs a private name that is gone is left to Hydra."""
    loader, missing = context.config_loader, _missing_for(context.config_loader)
    gone = dict.fromkeys(missing, COMPOSED_IN_FULL)
    if not isinstance(getattr(context.callbacks, "callbacks", None), list):
        gone[f"{type(context.callbacks).__qualname__}.callbacks"] = CONFIGS_KEPT
    _warn(gone)  # before release_job_configs, so that one warning names all that is gone
    if not missing:
        loader = SharedCompositionLoader(loader)
    release_job_configs(context.callbacks)
    return HydraContext(config_loader=loader, callbacks=context.callbacks)


# (token of the loader, {structural overrides: composed config}) of the current sweep.
_BASES: Tuple[str, Dict[Tuple[str, ...], Union[_Frozen, DictConfig]]] = ("", {})


class SharedCompositionLoader(ConfigLoader):
    """A :class:`ConfigLoader` that shares composition between a sweep's jobs.

    Everything but :meth:`load_sweep_config` is delegated. The shared parts live in a
    per-process cache under this loader's token, so a loader sent to another process
    (joblib pickles it with every job) builds the cache once per worker, not once per job.
    """

    def __init__(self, delegate: ConfigLoader) -> None:
        self.delegate = delegate
        self.token = uuid.uuid4().hex
        self.missing = _missing_for(delegate)  # non-empty: compose every job as Hydra does

    @property
    def _bases(self) -> Dict[Tuple[str, ...], Union[_Frozen, DictConfig]]:
        global _BASES
        if _BASES[0] != self.token:  # a new sweep in this process: drop the last one's
            _BASES = (self.token, {})
        return _BASES[1]

    def _is_value(self, override: Override) -> bool:
        """Whether Hydra applies ``override`` after composition (a plain value, not a group)."""
        return (
            not override.is_hydra_override()
            and not override.is_sweep_override()
            and override.package is None
            and not self.delegate.repository.group_exists(override.key_or_group)
        )

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: List[str]) -> DictConfig:
        if self.missing:
            _warn(dict.fromkeys(self.missing, COMPOSED_IN_FULL))
            return self.delegate.load_sweep_config(master_config, sweep_overrides)
        # A search path changes which keys are config groups: compose such jobs in full.
        if OmegaConf.select(master_config, "hydra.searchpath") or any(
            "hydra.searchpath" in item for item in sweep_overrides
        ):
            return self.delegate.load_sweep_config(master_config, sweep_overrides)
        apply_overrides, overrides_dirname = _private()[0]
        parsed = OverridesParser.create().parse_overrides(list(sweep_overrides))
        values = [o for o in parsed if self._is_value(o)]
        if not values:
            return self.delegate.load_sweep_config(master_config, sweep_overrides)
        key = tuple(o.input_line for o in parsed if not self._is_value(o))
        base = self._bases.get(key)
        if base is None:
            base = self._bases[key] = _frozen(self.delegate.load_sweep_config(master_config, list(key)))
        cfg = base.copy() if isinstance(base, _Frozen) else copy.deepcopy(base)
        apply_overrides(values, cfg)
        # The bookkeeping Hydra does after applying the overrides, for the whole job.
        app = [o for o in parsed if not o.is_hydra_override()]
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.task = [o.input_line for o in app]
            dirname = cfg.hydra.job.config.override_dirname
            cfg.hydra.job.override_dirname = overrides_dirname(
                overrides=app, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys
            )
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg

    def load_configuration(self, *args: Any, **kwargs: Any) -> DictConfig:
        return self.delegate.load_configuration(*args, **kwargs)

    def get_search_path(self):
        return self.delegate.get_search_path()

    def get_sources(self):
        return self.delegate.get_sources()

    def list_groups(self, parent_name: str) -> List[str]:
        return self.delegate.list_groups(parent_name)

    def get_group_options(self, *args: Any, **kwargs: Any) -> List[str]:
        return self.delegate.get_group_options(*args, **kwargs)

    def compute_defaults_list(self, *args: Any, **kwargs: Any):
        return self.delegate.compute_defaults_list(*args, **kwargs)


class _Frozen:
    """A config pickled once, copied by unpickling (several times faster than deepcopy).

    Hydra's plugin scan re-executes every ``hydra_plugins.*`` module, so a launcher's
    structured config (``JobLibLauncherConf``) composed before the last scan refers to a
    class its module no longer holds, which plain pickle refuses. Such classes are kept
    aside and put back as the very same objects: the bytes never leave this process.
    """

    def __init__(self, cfg: DictConfig) -> None:
        self.classes: List[type] = []
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.persistent_id = self._class_id
        pickler.dump(cfg)
        self.data = buffer.getvalue()

    def _class_id(self, obj: Any) -> Optional[int]:
        if isinstance(obj, type) and not _importable(obj):
            self.classes.append(obj)
            return len(self.classes) - 1
        return None

    def copy(self) -> DictConfig:
        if not self.classes:
            return pickle.loads(self.data)
        unpickler = pickle.Unpickler(io.BytesIO(self.data))
        unpickler.persistent_load = self.classes.__getitem__
        return unpickler.load()


def _importable(cls: type) -> bool:
    """Whether pickle finds ``cls`` itself under its module and name."""
    try:
        return functools.reduce(getattr, cls.__qualname__.split("."), sys.modules[cls.__module__]) is cls
    except (KeyError, AttributeError):
        return False


def _frozen(cfg: DictConfig) -> Union[_Frozen, DictConfig]:
    """``cfg`` pickled, or as is (then deep-copied) if it holds something pickle refuses."""
    try:
        return _Frozen(cfg)
    except (pickle.PicklingError, TypeError, AttributeError):
        return cfg


class ReleaseJobConfigs(Callback):
    """Drop a finished job's config copies (``JobReturn.cfg`` and ``hydra_cfg``).

    Nothing reads them later: the sweep needs a job's status and return value only.
    """

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        job_return.cfg = job_return.hydra_cfg = None


def release_job_configs(callbacks: Any) -> bool:
    """Register :class:`ReleaseJobConfigs` with Hydra's ``callbacks``, once; False if it cannot.

    Registered first, so that it runs last: Hydra notifies ``on_job_end`` in reverse order,
    and every other callback still sees the whole ``JobReturn``. Hydra has no public way to
    add a callback from a plugin: this edits the list inside its private ``Callbacks``.
    """
    registered = getattr(callbacks, "callbacks", None)
    if not isinstance(registered, list):
        _warn({f"{type(callbacks).__qualname__}.callbacks": CONFIGS_KEPT})
        return False
    if not any(isinstance(c, ReleaseJobConfigs) for c in registered):
        registered.insert(0, ReleaseJobConfigs())
    return True
