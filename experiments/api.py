"""The suite from Python and notebooks: read a sweep (:func:`load_sweep`), run one
configuration (:func:`run_config`).

Both take what the command line takes and refuse what it refuses, with the same one-line
message, raised as :class:`experiments.config.ConfigError` instead of printed: a notebook
keeps running.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from experiments.config import PROJECT_ROOT, ConfigError, build, resolved, validate

__all__ = ["Run", "default_uri", "load_sweep", "run_config"]

CONF_DIR = PROJECT_ROOT / "conf"


def default_uri() -> str:
    """The tracking URI the suite uses when none is given: ``tracking.uri``'s default in
    ``conf/tracking/default.yaml`` (``MLFLOW_TRACKING_URI``, else the SQLite store
    ``mlflow.db`` at the project root), resolved the same way."""
    return str(OmegaConf.load(CONF_DIR / "tracking" / "default.yaml").uri)


def load_sweep(sweep_id: str | None = None, experiment: str = "mcgrad-bench", tracking_uri: str | None = None,
               curves: Sequence[str] = ()):
    """One sweep of the tracking store as a tidy DataFrame, one row per job run.

    Columns: ``run_id``, ``run_name``, ``status``; every param of the resolved config
    (dotted keys such as ``problem.distance``; numbers as numbers, ``True``/``False`` as
    booleans); ``estimator`` (the estimator's name, with the options the sweep varies under
    it, as the report labels it); the summary metrics (``final_dist``, ``steps_to_tol``, …,
    NaN where a run logged none); ``complete`` (FINISHED with its summary); the suite's tags
    (``problem``, ``sweep_id``, ``git_commit``, ``config_hash``, …). A grid point that a
    resumed sweep ran again is one row, its finished run. The report
    (``python -m experiments.report``) reads runs through the same function
    (:func:`experiments.report.data.read_runs`).

    ``sweep_id`` None: the experiment's latest sweep. ``tracking_uri`` None: the suite's
    default store (:func:`default_uri`). ``curves``: metric names (``"grad_variance"``,
    ``"dist_to_opt"``, …) whose histories to read as well; then the result is
    ``(runs, curves)``, ``curves`` a long frame with columns ``run_id``, ``step``,
    ``metric``, ``value``. ``runs.attrs`` holds ``sweep_id``, ``experiment`` and
    ``tracking_uri`` (credentials hidden).

    Raises :class:`experiments.report.data.ReportError` (a :class:`ConfigError`, one line) for
    a store, experiment or sweep that is not there; nothing is created.
    """
    from experiments.config import redact_uri
    from experiments.report.data import histories, read_runs, run_table

    uri = default_uri() if tracking_uri is None else str(tracking_uri)
    found = read_runs(uri, experiment, None if sweep_id is None else str(sweep_id))
    runs = run_table(found.jobs)
    runs.attrs.update(sweep_id=found.sweep_id, experiment=experiment, tracking_uri=redact_uri(uri))
    if not curves:
        return runs
    names = [curves] if isinstance(curves, str) else list(dict.fromkeys(curves))
    parts = [histories(found.client, runs["run_id"], name) for name in names]
    long = pd.concat(parts, ignore_index=True).rename(columns={"key": "metric"})
    return runs, long[["run_id", "step", "metric", "value"]].reset_index(drop=True)


@dataclass(frozen=True, eq=False)
class Run:
    """One configuration's results, as :func:`run_config` returns them.

    ``curves``: DataFrame indexed by ``step`` (the logged steps), one column per curve
    (``loss``, ``dist_to_opt``, ``grad_variance``, ``grad_variance_exact``, …), the values a
    run logs to MLflow. ``summary``: the summary metrics. ``trajectory``: θ_0 … θ_stop, shape
    (stop + 1, k) (the learned blocks, flat). ``config``: the resolved config, as logged in
    ``config.yaml``. ``run_id``: the MLflow run, None unless logged.
    """

    curves: pd.DataFrame
    summary: dict[str, float]
    trajectory: np.ndarray
    config: DictConfig
    run_id: str | None = None

    def exact_variance(self) -> np.ndarray:
        """``grad_variance_exact`` at every θ_t of the trajectory, not only the logged steps:
        tr Cov of the N-sample estimate in closed form where the problem knows it (the
        quadratic's are in :class:`problems.quadratic.Quadratic`), NaN elsewhere. Computed as
        the loop computes the logged curve (:func:`experiments.sgd.exact_variance`)."""
        import estimators
        from estimators import families
        from estimators.sampling import independent
        from experiments.sgd import exact_variance

        cfg = self.config
        problem = build(cfg.problem)
        sampling = build(cfg.sampling) if "sampling" in cfg else independent
        config = estimators.describe(estimators.configure(build(cfg.estimator), sampling=sampling))
        family = problem.family
        if cfg.get("learn_scale", False):
            family = families.with_learned(family, ("scale",))
        params0 = problem.params0
        out = np.empty(len(self.trajectory))
        for t, theta in enumerate(self.trajectory):
            value = exact_variance(problem, config, family, families.unflatten(family, theta, params0), cfg.samples)[""]
            out[t] = value if math.isfinite(value) else math.nan
        return out


def _compose(overrides: list[str]) -> DictConfig:
    """The job config the CLI composes for ``overrides`` (without its ``hydra`` node)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        raise ConfigError(f"invalid {flags[0]}: run_config takes overrides only; allowed: key=value "
                          "(a sweep: python -m experiments.run -m …)")
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(" ".join(str(err).split())) from None
    for item, override in zip(overrides, parsed):
        if override.is_sweep_override():
            raise ConfigError(f"invalid {item}: run_config runs one configuration; allowed: one value per key "
                              "(a sweep: python -m experiments.run -m …)")
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(" ".join(str(err).split())) from None


def run_config(*overrides: str, log: bool = False) -> Run:
    """Run one configuration, given as the command line's overrides
    (``run_config("estimator=reparameterization", "step_size=1e-2")``), and return its
    results (:class:`Run`): the numbers ``python -m experiments.run`` with the same
    overrides computes, bit for bit (the wall-clock timings aside).

    Checked as the command line checks it (group options, keys, values, the store), raising
    :class:`ConfigError` with the message the CLI prints, before anything is written.
    ``log=False`` touches no tracking store. ``log=True`` logs one MLflow run, as the CLI
    does, to ``tracking.uri`` (an override, else the default) and sets ``run_id``.
    """
    from experiments.overrides import check_group_choices, check_keys
    from experiments.runner import compute

    overrides = [str(o) for o in overrides]
    check_group_choices(overrides)
    check_keys(overrides)
    cfg = _compose(overrides)
    validate(cfg)
    run_id = None
    if log:
        from experiments import tracking
        from experiments.runner import execute

        tracking.preflight(cfg.tracking.uri)
        tracking.experiment_id(cfg.tracking.uri, cfg.tracking.experiment)  # a deleted one is refused
        kept = []
        run_id = execute(cfg, overrides=overrides, on_result=kept.append)["run_id"]
        result = kept[0]
    else:
        result = compute(cfg)
    curves = pd.DataFrame(result.curves, index=pd.Index(result.steps, name="step"))
    return Run(curves, dict(result.summary), result.trajectory, OmegaConf.create(resolved(cfg)), run_id)
