"""One job: validate its config, run SGD, and log everything to one MLflow run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from omegaconf import DictConfig, OmegaConf

import estimators
from estimators.sampling import independent
from experiments import tracking
from experiments.config import build, config_hash, params, resolved, validate
from experiments.sgd import run_sgd
from problems.base import HasCurves

log = logging.getLogger(__name__)


def run_name(cfg: DictConfig, overrides: Sequence[str] = ()) -> str:
    """The estimator, then the values this job sets on the command line or in the sweep.

    ``problem.distance=100`` reads ``distance=100``; tracking overrides are left out.
    """
    parts = [cfg.estimator.name]
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key == "estimator" or key.startswith(("tracking.", "hydra.")):
            continue
        parts.append(f"{key.rsplit('.', 1)[-1]}={value}")
    return " ".join(parts)


def compute(cfg: DictConfig, problem=None):
    """The run ``cfg`` describes, computed and returned (:class:`~experiments.sgd.RunResult`), not logged."""
    problem = build(cfg.problem) if problem is None else problem
    # The sampling scheme applies to every estimator: bound as its keyword, inside any wrapper.
    sampling = build(cfg.sampling) if "sampling" in cfg else independent
    estimator = estimators.configure(build(cfg.estimator), sampling=sampling)
    optimizer = build(cfg.optimizer) if "optimizer" in cfg else None
    return run_sgd(
        problem,
        estimator,
        step_size=cfg.step_size,
        steps=cfg.steps,
        samples=cfg.samples,
        seed=cfg.seed,
        variance_samples=cfg.variance_samples,
        log_points=cfg.log_points,
        tolerance=cfg.tolerance,
        divergence_factor=cfg.divergence_factor,
        learn_scale=bool(cfg.get("learn_scale", False)),
        optimizer=optimizer,
    )


def execute(cfg: DictConfig, overrides: Sequence[str] = (), on_result: Callable | None = None) -> dict[str, float]:
    """Run the job that ``cfg`` describes and log it; returns its summary metrics.

    ``on_result``, if given, receives the computed :class:`~experiments.sgd.RunResult` before
    it is logged (:func:`experiments.run_config` returns it whole).

    Raises :class:`experiments.config.ConfigError` before touching the store if a value is
    invalid. A diverging trajectory is a result (``diverged`` = 1, run FINISHED); an
    exception marks the run FAILED (KILLED on an interrupt) and propagates.
    """
    validate(cfg)
    problem = build(cfg.problem)
    uri = cfg.tracking.uri
    sweep_id = cfg.tracking.sweep_id or tracking.new_sweep_id()
    tags = {
        "estimator": cfg.estimator.name,
        "problem": cfg.problem.name,
        "family": problem.family.name,
        "sweep_id": sweep_id,
        "git_commit": tracking.git_commit(),
        "config_hash": config_hash(cfg),
        "run_kind": "job",
    }
    if isinstance(problem, HasCurves):  # its own curves, by name: what the report reads
        tags["curves"] = ",".join(problem.curves)
    if getattr(problem, "formula", None):  # what f is, as the report titles it
        tags["formula"] = problem.formula
    run_id = tracking.start_run(
        uri,
        cfg.tracking.experiment,
        run_name(cfg, overrides),
        tags,
        params(cfg),
        parent_run_id=cfg.tracking.parent_run_id,
    )
    error: BaseException | None = None
    try:
        result = compute(cfg, problem)
        if on_result is not None:
            on_result(result)
        tracking.log_curves(uri, run_id, result.steps, result.curves, result.summary)
        tracking.log_files(
            uri,
            run_id,
            {"config.yaml": OmegaConf.to_yaml(resolved(cfg)), "trajectory.npy": result.trajectory},
        )
    except BaseException as err:
        error = err
        raise
    finally:
        tracking.end_run(uri, run_id, tracking.job_status(error))
    s = result.summary
    log.info(
        "%s: final_loss=%.4g%s diverged=%d (run %s)",
        run_name(cfg, overrides),
        s["final_loss"],
        f" final_dist={s['final_dist']:.4g} steps_to_tol={s['steps_to_tol']:.0f}" if "final_dist" in s else "",
        s["diverged"],
        run_id,
    )
    return {**s, "run_id": run_id}
