"""Entry point: ``python -m experiments.run [overrides]`` runs one job, ``-m`` a sweep.

The logic lives in :func:`experiments.runner.execute`; this module only binds it to Hydra.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments import tracking
from experiments.config import PROJECT_ROOT, ConfigError, hide_credentials, refuse, validate
from experiments.sweep.interrupts import Interrupted, sigterm_raises
from experiments.runner import execute

CONF_DIR = PROJECT_ROOT / "conf"


def check_group_choices(argv: Sequence[str]) -> None:
    """Refuse an unknown option of a config group (``estimator=foo``) in one line.

    Hydra would refuse it too, but over several lines and after its start-up; this also
    checks each element of a sweep list (``estimator=score_function,foo``). Options from
    an added ``hydra.searchpath`` are not known here, so Hydra alone checks those.
    """
    items = [a for a in argv if "=" in a and not a.startswith("-")]
    if any(a.lstrip("+").startswith("hydra.searchpath") for a in items):
        return
    try:
        overrides = OverridesParser.create().parse_overrides(items)
    except HydraException as err:
        refuse(" ".join(str(err).split()))
    for override in overrides:
        group = CONF_DIR / override.key_or_group
        if override.key_or_group == "hydra" or not group.is_dir() or override.is_delete():
            continue
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                continue
            values = list(override.sweep_string_iterator())
        else:
            values = [override.get_value_element_as_str()]
        options = sorted(p.stem for p in group.glob("*.yaml"))
        for value in values:
            if value not in options:
                refuse(f"invalid {override.key_or_group}={value}: allowed: one of {', '.join(options)}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        # The sweeper validated every job and checked the store up front; a ConfigError
        # here fails this job alone.
        return execute(cfg, overrides=hc.overrides.task)
    with sigterm_raises():
        try:
            validate(cfg)
            tracking.preflight(cfg.tracking.uri)
            tracking.experiment_id(cfg.tracking.uri, cfg.tracking.experiment)  # a deleted one is refused
        except ConfigError as err:
            refuse(str(err))
        return execute(cfg, overrides=hc.overrides.task)


def cli() -> None:
    sys.argv[1:] = hide_credentials(sys.argv[1:])
    check_group_choices(sys.argv[1:])
    try:
        main()
    except KeyboardInterrupt as err:
        print("mcgrad-bench: interrupted; the active runs were marked KILLED", file=sys.stderr)
        raise SystemExit(143 if isinstance(err, Interrupted) else 130) from None


if __name__ == "__main__":
    cli()
