"""The command line's overrides, checked before Hydra starts, each refusal in one line.

Hydra refuses an unknown group option (``estimator=foo``) or an unknown key (``stepsize=1``)
too, but over several lines, after its start-up and with exit status 1; these checks raise
:class:`~experiments.config.ConfigError` with one line, which the entry points print before
exiting with status 2, as every other refusal of the suite does.
"""

from __future__ import annotations

import difflib
import importlib.util
import itertools
from collections.abc import Sequence
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from experiments.config import PROJECT_ROOT, ConfigError

CONF_DIR = PROJECT_ROOT / "conf"
# Compositions tried at most to find a key under the other options of swept groups.
_MOST_COMPOSITIONS = 16


def _parse(argv: Sequence[str]) -> list[Override]:
    """The overrides of ``argv``."""
    items = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        return OverridesParser.create().parse_overrides(items)
    except HydraException as err:
        raise ConfigError(" ".join(str(err).split())) from None


def search_dirs(overrides: Sequence[Override], conf_dir: Path = CONF_DIR) -> list[Path]:
    """``conf_dir`` and the config directories a ``hydra.searchpath=[...]`` override adds.

    ``file://<dir>`` is a directory (relative to the working directory, as Hydra reads it);
    ``pkg://<package>`` the directory of an importable package. An entry that is neither is
    refused here, in one line: Hydra only warns and goes on without it.
    """
    dirs = [conf_dir]
    for override in overrides:
        if override.key_or_group != "hydra.searchpath" or override.is_delete():
            continue
        entries = override.value()
        for entry in entries if isinstance(entries, list) else [entries]:
            dirs.append(_search_dir(str(entry)))
    return dirs


def _search_dir(entry: str) -> Path:
    scheme, sep, where = entry.partition("://")
    allowed = "allowed: file://<a directory> or pkg://<an importable package>, holding config groups"
    if sep and scheme == "file" and Path(where).is_dir():
        return Path(where).resolve()
    if sep and scheme == "pkg":
        try:
            spec = importlib.util.find_spec(where)
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if locations:
            return Path(locations[0])
        raise ConfigError(f"invalid hydra.searchpath entry {entry}: no importable package {where} "
                          f"(is it installed, or on PYTHONPATH?); {allowed}")
    raise ConfigError(f"invalid hydra.searchpath entry {entry}: not a directory; {allowed}")


def _values(override: Override) -> list[str]:
    if override.is_sweep_override():
        return list(override.sweep_string_iterator()) if override.is_discrete_sweep() else []
    return [override.get_value_element_as_str()]


def _group(override: Override, dirs: Sequence[Path]) -> bool:
    return not override.key_or_group.startswith("hydra") and any((d / override.key_or_group).is_dir() for d in dirs)


def check_group_choices(argv: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Refuse an unknown option of a config group (``estimator=foo``), each element of a sweep
    list included (``estimator=score_function,foo``); the options are those of ``conf_dir`` and
    of every directory on ``hydra.searchpath``."""
    overrides = _parse(argv)
    dirs = search_dirs(overrides, conf_dir)
    for override in overrides:
        if not _group(override, dirs) or override.is_delete():
            continue
        options = sorted({p.stem for d in dirs for p in (d / override.key_or_group).glob("*.yaml")})
        for value in _values(override):
            if value not in options:
                raise ConfigError(f"invalid {override.key_or_group}={value}: allowed: one of {', '.join(options)}")


def _keys(node, prefix: str = "") -> list[str]:
    """Every dotted key of a config, nested ones included."""
    out = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        out.append(dotted)
        if isinstance(value, dict):
            out += _keys(value, dotted + ".")
    return out


def check_keys(argv: Sequence[str], config_name: str = "config", conf_dir: Path = CONF_DIR) -> None:
    """Refuse a plain override of a key the composed config does not have (``stepsize=1e-3``,
    ``problem.kk=2``), naming the nearest keys that exist. With swept groups the key must exist
    under each of their options (``problem=quadratic,gamma_expectation problem.rate0=2`` is
    refused: the quadratic has no rate). ``+key=`` adds a key and is not checked."""
    from hydra import compose, initialize_config_dir

    overrides = _parse(argv)
    dirs = search_dirs(overrides, conf_dir)
    plain = [o for o in overrides if not (o.is_add() or o.is_force_add() or o.is_delete())
             and not o.key_or_group.startswith("hydra") and not _group(o, dirs)]
    if not plain:
        return
    # The search path composes with the rest, so keys of the user's own options are seen.
    searchpath = [o.input_line for o in overrides if o.key_or_group == "hydra.searchpath" and not o.is_delete()]
    groups = [o for o in overrides if _group(o, dirs) and not o.is_delete() and _values(o)]
    # Each swept group at each of its options, the others at their first: every option is met.
    first = {o.key_or_group: _values(o)[0] for o in groups}
    swept = {o.key_or_group: first[o.key_or_group] for o in groups if len(_values(o)) > 1}
    variants = [(swept, first)] + [({o.key_or_group: v}, first | {o.key_or_group: v})
                                   for o in groups for v in _values(o)[1:]]
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        for where_swept, choice in itertools.islice(variants, _MOST_COMPOSITIONS):
            cfg: DictConfig = compose(config_name, overrides=searchpath + [f"{g}={v}" for g, v in choice.items()])
            keys = set(_keys(OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))))
            for override in plain:
                if override.key_or_group not in keys:
                    where = "".join(f" with {g}={v}" for g, v in where_swept.items())
                    near = ", ".join(_nearest(override.key_or_group, keys)) or "none close"
                    raise ConfigError(f"invalid {override.key_or_group}{where}: the config has no such key; "
                                      f"allowed: an existing key (nearest: {near}), or +{override.key_or_group}=… "
                                      "to add one")


def _nearest(key: str, keys: set[str]) -> list[str]:
    """The keys beside ``key`` (same parent) that look like it, else all of them (at most 8);
    where ``key``'s parent does not exist, the keys anywhere whose last part looks like its own."""
    parent, _, last = key.rpartition(".")
    visible = sorted(k for k in keys if not k.rpartition(".")[2].startswith("_"))
    siblings = [k for k in visible if k.rpartition(".")[0] == parent]
    if parent and parent not in keys:
        names = difflib.get_close_matches(last, sorted({k.rpartition(".")[2] for k in visible}), n=3, cutoff=0.6)
        return [k for k in visible if k.rpartition(".")[2] in names][:8]
    return difflib.get_close_matches(key, siblings, n=3, cutoff=0.6) or siblings[:8]
