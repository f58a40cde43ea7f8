"""Building the report of one sweep: tables, figures and ``index.html``, from MLflow alone.

:func:`build_report` is what ``python -m experiments.report`` calls; :func:`write_report`
turns an already read :class:`~experiments.report.data.Sweep` into files; :func:`plan` says
which sections a sweep gets (they follow from its shape, not from the names of its problems).
"""

from __future__ import annotations

import base64
import html
import importlib.metadata
import platform
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from experiments.config import PROJECT_ROOT, ConfigError, redact_uri, validate
from experiments.report import figures, tables
from experiments.report.data import Sweep, read_sweep, trajectories, variance_study

PACKAGES = ("numpy", "pandas", "matplotlib", "seaborn", "pillow", "mlflow", "hydra-core", "omegaconf")
# Files a report owns in its folder; a rebuild removes stale ones (a setting that is gone).
OWNED = ("index.html", "*.png", "*.gif", "*.csv")


@dataclass(frozen=True)
class Options:
    dpi: int = 100
    animation_frames: int = 60


def _check(cfg: DictConfig) -> None:
    validate(cfg)
    sid = cfg.get("sweep_id")
    if sid is not None and (not isinstance(sid, (str, int)) or isinstance(sid, bool) or str(sid).strip() == ""):
        raise ConfigError(f"invalid sweep_id={sid!r}: allowed: null (the latest sweep) or a sweep id")
    if not str(cfg.get("output_dir") or "").strip():
        raise ConfigError(f"invalid output_dir={cfg.get('output_dir')!r}: allowed: a directory path")
    for key, least in (("dpi", 20), ("animation_frames", 2)):
        v = cfg.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < least:
            raise ConfigError(f"invalid {key}={v!r}: allowed: an integer >= {least}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"


def report_dir(output_dir: str | Path, experiment: str, sweep_id: str) -> Path:
    return Path(output_dir) / _safe(experiment) / _safe(sweep_id)


def build_report(cfg: DictConfig) -> Path:
    """Read the sweep ``cfg`` names (``sweep_id``, ``tracking.*``), write its report, return
    the path of its ``index.html``; with ``log_to_mlflow``, also log it to the sweep's parent
    run under ``report/``.

    Raises :class:`experiments.config.ConfigError` (one line) for a bad key, or a store,
    experiment or sweep that is not there.
    """
    _check(cfg)
    sid = cfg.get("sweep_id")
    sweep = read_report_sweep(cfg.tracking.uri, cfg.tracking.experiment, None if sid is None else str(sid))
    out = report_dir(cfg.output_dir, sweep.experiment, sweep.sweep_id)
    index = write_report(sweep, out, Options(cfg.dpi, cfg.animation_frames), rebuild=_command(cfg, sweep))
    if cfg.get("log_to_mlflow", True) and sweep.parent:
        from experiments.tracking import client

        client(sweep.uri).log_artifacts(sweep.parent["run_id"], str(out), artifact_path="report")
    return index


def read_report_sweep(uri: str, experiment: str, sweep_id: str | None = None) -> Sweep:
    """The sweep as its report draws it (:func:`plan` takes it): read, with the trajectories of
    the runs drawn in the plane."""
    sweep = read_sweep(uri, experiment, sweep_id)
    sweep.trajectories = trajectories(sweep.uri, sorted(tables.trajectory_runs(sweep.runs, sweep.factors)["run_id"]))
    return sweep


def _command(cfg: DictConfig, sweep: Sweep) -> str:
    """The command that rebuilds this report: the sweep and store always, other keys if not default."""
    args = [
        f"sweep_id={sweep.sweep_id}",
        f"tracking.uri={redact_uri(str(cfg.tracking.uri))}",
        f"tracking.experiment={sweep.experiment}",
    ]
    defaults = OmegaConf.load(PROJECT_ROOT / "conf" / "report.yaml")
    for key in ("output_dir", "dpi", "animation_frames"):
        if str(OmegaConf.select(defaults, key)) != str(cfg[key]):
            args.append(f"{key}={cfg[key]}")
    return "python -m experiments.report " + " ".join(shlex.quote(a) for a in args)


def _tolerance(runs: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    done = runs[runs["complete"]]
    if "tolerance" not in done:
        return pd.DataFrame(columns=[*factors, "tol"])
    tol = done.assign(tol=done["tolerance"] * done["problem.distance"])
    return tol.groupby(list(factors), sort=True, dropna=False)["tol"].first().reset_index()


@dataclass
class Section:
    """One numbered section of the page: a figure whose ``files`` ``draw`` writes (PNG first,
    then any CSV or animation beside it), or, without ``draw``, a note saying why it is absent.
    ``name`` keys its caption (:data:`CAPTIONS`); ``heading`` replaces that caption's title,
    ``fill`` fills the caption's placeholders."""

    name: str
    files: list[str] = field(default_factory=list)
    draw: Callable[[Path, Options], None] | None = None
    note: str = ""
    heading: str = ""
    fill: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The section's id: its figure's file name without ``.png`` (its name for a note)."""
        return self.files[0].removesuffix(".png") if self.files else self.name


def _at_start_only(runs: pd.DataFrame) -> bool:
    """Whether every complete run only measured at θ₀ (``steps`` = 0): no curve against step."""
    done = runs[runs["complete"]]
    return bool(len(done)) and "steps" in done and bool((done["steps"] == 0).all())


def _layout(sweep: Sweep) -> dict:
    """What the report computes before drawing: the tables, and which sections the sweep has."""
    runs, factors = sweep.runs, sweep.factors
    summary = tables.summary_table(runs, factors)
    distance = tables.has_distance(runs)
    at_start = _at_start_only(runs)
    # Steps to tolerance rank the step sizes: only runs with an optimum and steps have a fair comparison.
    best = tables.best_steps(runs[distance], factors) if distance.any() and not at_start else None
    param, facets = tables.study_columns(sweep)
    study = tables.variance_vs_param(sweep)
    # A θ₀ study draws its bias against its param instead.
    split = tables.mse_split(sweep) if not len(study) else pd.DataFrame()
    # A problem that trains a model (its runs log an ELBO and a test ELBO): final values and costs.
    training = tables.training_table(sweep) if tables.trains_a_model(sweep) and not at_start else None
    return {"summary": summary, "best": best, "training": training, "param": param, "facets": facets, "study": study,
            "split": split,
            "colors": figures.palette(sorted(runs["estimator"].unique())),
            # A sweep at θ₀ over a param: its study figures cover the whole sweep.
            "study_only": bool(len(study)) and bool(variance_study(runs)[runs["complete"]].all())}


def plan(sweep: Sweep) -> list[str]:
    """The ids of the sections the report of ``sweep`` draws, in page order (a figure's id is
    its file name without ``.png``): which follow from the sweep's shape, whether its runs take
    steps (``steps`` = 0: a study at θ₀, its study figures only), which factors vary, and which
    curves its problems declare. Notes on absent sections are not listed."""
    layout = _layout(sweep)
    return [s.id for _, made in _sections(sweep, layout) for s in made if s.draw is not None]


def write_report(sweep: Sweep, out: Path, options: Options = Options(), rebuild: str = "") -> Path:
    """Write ``summary.csv``, ``fair_comparison.csv`` (runs with a distance and steps only), the
    θ₀ study's numbers or the MSE split's (``mse_split.csv``) where drawn, ``training.csv`` for a
    sweep that trains a model (:func:`tables.trains_a_model`), the figures of
    :func:`plan` and ``index.html`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for pattern in OWNED:
        for stale in out.glob(pattern):
            stale.unlink()
    layout = _layout(sweep)
    _csv(layout["summary"], out / "summary.csv")
    if layout["best"] is not None:
        _csv(_fair(layout["best"], sweep.factors), out / "fair_comparison.csv")
    if len(layout["split"]):
        _csv(layout["split"], out / "mse_split.csv")
    if layout["training"] is not None:
        _csv(layout["training"], out / "training.csv")
    sections = _sections(sweep, layout)
    for _, made in sections:
        for section in made:
            if section.draw is not None:
                section.draw(out, options)
    index = out / "index.html"
    index.write_text(_page(sweep, out, layout["summary"], layout["best"], sections, rebuild, layout["training"]),
                     encoding="utf-8")
    return index


def _sections(sweep: Sweep, layout: dict) -> list[tuple[str, list[Section]]]:
    """The page's sections, grouped under a setting's heading ("" for none), nothing drawn yet."""
    runs, factors = sweep.runs, sweep.factors
    summary, best, study, split = layout["summary"], layout["best"], layout["study"], layout["split"]
    param, facets, colors = layout["param"], layout["facets"], layout["colors"]
    sections: list[tuple[str, list[Section]]] = []
    if len(study):
        sections.append(("", _study(sweep, study, param, facets, colors)))
    if layout["study_only"]:
        return sections
    start = tables.variance_at_start(sweep)
    if "samples" in factors and not len(study):  # N on the x axis, once for the whole sweep
        made = _samples(sweep, colors)
        if made:
            sections.append(("", made))
    # The same variances times what one estimate costs: estimators compared at equal work.
    start_work = tables.at_equal_cost(start, runs, [f for f in factors if f != "step_size"],
                                      ("mean", "std", "se", "exact"))
    dist = tables.bands(sweep, "dist_to_opt")
    loss = tables.bands(sweep, "loss")
    var = tables.bands(sweep, "grad_variance")
    exact = tables.bands(sweep, "grad_variance_exact")
    # Read only in a sweep with a biased estimator (data.biased): else empty, and not drawn.
    bias = tables.bands(sweep, "grad_bias_sq", far_after_stop=False)
    bias_exact = tables.bands(sweep, "grad_bias_sq_exact", far_after_stop=False)
    tol = _tolerance(runs, factors)
    picks = tables.trajectory_runs(runs, factors)
    # The problem's own curves: +inf after a divergence would read as "best" for some (an ELBO).
    # A model's training curves get figures of their own (against step, time and evaluations).
    training = {key: tables.training_bands(sweep, key) for key in tables.TRAINING_CURVES} \
        if layout["training"] is not None else {}
    own = {key: tables.bands(sweep, key, far_after_stop=False) for key in sweep.problem_curves if key not in training}
    short = param.removeprefix("problem.") if param else ""
    # One copy of each section: factors beyond the estimator, step size and distance are facets in it.
    sub = {
        "table": summary, "best": best, "start": start, "start_work": start_work, "dist": dist, "loss": loss,
        "var": var, "exact": exact, "bias": bias, "bias_exact": bias_exact, "tol": tol,
        "picks": _planar(picks, sweep.trajectories), "own": own, "training": training,
        "study": short if len(study) else "", "split": split,
        "distance": bool(tables.has_distance(runs).any()),
        "distances": runs["problem.distance"].nunique() if "problem.distance" in runs else 0,
        # Runs that only measured at θ₀ have one point per curve: nothing to draw against step.
        "at_start": _at_start_only(runs),
    }
    sections.append(("", _figures(sub, colors, sweep.extras)))
    return sections


def _png(make: Callable[[], object], name: str) -> Callable[[Path, Options], None]:
    """A section's drawing: the figure ``make`` returns, saved as ``name``."""
    return lambda out, options: figures.save_png(make(), out / name, options.dpi)


# Cosmetic descriptions of estimators in a study's legend, by name; any other goes by its name.
ESTIMATOR_NOTES = {
    "score_function_oracle_baseline": "exact optimal baseline (oracle)",
    "score_function_optimal_baseline": "optimal baseline estimated from a pilot",
}


def _study(sweep: Sweep, study: pd.DataFrame, param: str, facets: list[str], colors: dict) -> list[Section]:
    """The θ₀ study's sections: the variance against its param, at equal cost where the
    estimators declare their cost, and the bias where the runs logged it."""
    runs = sweep.runs
    short = param.removeprefix("problem.")
    # Each test function as its problem wrote it (the tag ``formula``), for the panel titles.
    formulas = ({} if "formula" not in runs or "problem.f" not in runs else
                runs.dropna(subset=["formula"]).groupby("problem.f")["formula"].first().to_dict())
    fill = {"param": short, "per": _and([FACET_LABELS.get(f, f) for f in facets] + ["parameter block"])}
    samples = sorted(runs.loc[variance_study(runs), "samples"].dropna().unique()) if "samples" in runs else []
    n = "N = " + (", ".join(f"{v:g}" for v in samples) or "?") if param != "samples" else "N on the x axis"
    notes = {e: ESTIMATOR_NOTES[e] for e in study["estimator"].unique() if e in ESTIMATOR_NOTES}
    fill["n"] = n
    order = _listed(sweep)

    def figure(frame: pd.DataFrame, title: str, name: str, **kw) -> Callable[[Path, Options], None]:
        def draw(out: Path, options: Options) -> None:
            _csv(frame, out / f"{name}.csv")
            figures.save_png(figures.variance_vs_param(frame, colors, title, param, facets, samples=n,
                                                       formulas=formulas, notes=notes, order=order, **kw),
                             out / f"{name}.png", options.dpi)
        return draw

    name = f"variance_vs_{_safe(short)}"
    # A caption of its own for a figure of the reference study (by name), or against N, else the general one.
    made = [Section(name if name in CAPTIONS else "variance_vs_param", [f"{name}.png", f"{name}.csv"],
                    figure(study, f"Gradient variance at θ₀ against {short}, per {fill['per']}", name),
                    heading=f"Gradient variance at θ₀ against {short}", fill=fill | {"csv": f"{name}.csv"})]
    work = tables.at_equal_cost(study, runs[variance_study(runs)], [*facets, "estimator", param])
    if len(work) and work["value"].notna().any():
        name = f"work_normalized_variance_vs_{_safe(short)}"
        made.append(Section("work_normalized_variance_vs_param", [f"{name}.png", f"{name}.csv"],
                            figure(work, f"At equal cost: variance × evaluations per estimate at θ₀, against {short}",
                                   name, work=True),
                            heading=f"At equal cost: variance × evaluations against {short}",
                            fill=fill | {"csv": f"{name}.csv"}))
    bias = tables.bias_vs_param(sweep)
    if len(bias):
        name = f"bias_vs_{_safe(short)}"
        per = _and([FACET_LABELS.get(f, f) for f in facets])

        def draw_bias(out: Path, options: Options, name: str = name) -> None:
            _csv(bias, out / f"{name}.csv")
            figures.save_png(figures.bias_vs_param(
                bias, colors, f"Squared bias of the gradient at θ₀ against {short}" + (f", per {per}" if per else ""),
                param, facets, formulas, order), out / f"{name}.png", options.dpi)

        made.append(Section("bias_vs_param", [f"{name}.png", f"{name}.csv"], draw_bias,
                            heading=f"Bias of the gradient at θ₀ against {short}", fill=fill | {"csv": f"{name}.csv"}))
    return made


def _listed(sweep: Sweep) -> dict[str, list[str]]:
    """Each swept key's values in the order the sweep listed them (the parent run's tag
    ``sweep_overrides``, ``key=a,b,c`` per override): a preset's panels in its own order."""
    listed = {}
    for item in str((sweep.parent or {}).get("tags", {}).get("sweep_overrides", "")).split():
        key, eq, values = item.partition("=")
        if eq and "," in values:
            listed[key] = values.split(",")
    return listed


def _samples(sweep: Sweep, colors: dict) -> list[Section]:
    """A sweep with steps over N: the variance at θ₀ against N (every seed of a cell measures
    it there), per other factor but the step size, with the 1/N reference."""
    data = tables.variance_vs_samples(sweep)
    data = data[data["value"].notna()]
    if data["samples"].nunique() < 2:
        return []
    facets = [f for f in sweep.factors if f not in ("estimator", "samples", "step_size") and data[f].nunique() > 1]
    data = data[[*facets, "block", "estimator", "samples", "seeds", "value", "se", "exact"]]
    per = _and([FACET_LABELS.get(f, f) for f in facets])
    title = "Gradient variance at θ₀ against samples N" + (f", per {per}" if per else "")

    def draw(out: Path, options: Options) -> None:
        _csv(data, out / "variance_vs_samples.csv")
        figures.save_png(figures.variance_vs_param(data, colors, title, "samples", facets, samples="N on the x axis"),
                         out / "variance_vs_samples.png", options.dpi)

    fill = {"param": "samples", "per": _and([FACET_LABELS.get(f, f) for f in facets] + ["parameter block"]),
            "csv": "variance_vs_samples.csv"}
    return [Section("variance_vs_samples", ["variance_vs_samples.png", "variance_vs_samples.csv"], draw,
                    heading="Gradient variance at θ₀ against samples N", fill=fill)]


def _fair(best: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """The fair comparison as a table: per estimator and distance, the best step size and its
    outcome, and where the estimators declare their cost, the evaluations of f (or ∇f) that
    reaching the tolerance took: steps × evaluations per estimate."""
    keys = [f for f in factors if f != "step_size"]
    cols = ["step_size", "runs", "diverged_fraction", "median_steps_to_tol", "q25_steps_to_tol", "q75_steps_to_tol",
            "reached", "budget", "median_final_dist"]
    out = best[[*keys, *cols]].rename(columns={"step_size": "best_step_size"})
    if "evals_per_estimate" in best and best["evals_per_estimate"].notna().any():
        out["evals_per_estimate"] = best["evals_per_estimate"]
        out["median_evals_to_tol"] = best["median_steps_to_tol"] * best["evals_per_estimate"]
    return out


def _planar(picks: pd.DataFrame, trajectories: dict) -> list[dict]:
    """The picked runs whose logged θ_t are points of the plane (a run that also learns σ logs more)."""
    out = []
    for row in picks.to_dict("records"):
        path = trajectories.get(row["run_id"])
        if path is not None and path["theta"].ndim == 2 and path["theta"].shape[1] == 2 and len(path["theta"]):
            out.append({**row, **path})
    return out


def _csv(frame: pd.DataFrame, path: Path) -> None:
    # Fixed float format and line ends: the same sweep gives the same bytes.
    frame.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")


CAPTIONS = {
    "variance_vs_distance": (
        "Gradient variance at θ₀ against distance",
        "tr Cov of the gradient estimate at θ₀, measured by each run's probe (mean ± standard error "
        "over seeds) and in closed form (dashed). The score function's variance grows like D⁴ "
        "(dotted guide) on the founding quadratic problem; the reparameterization's stays at 4dσ²/N.",
    ),
    "variance_vs_k": (
        "Gradient variance at θ₀ against k",
        "tr Cov of the gradient estimate at θ₀ (N = samples per estimate) for each block of θ = (μ, σ) and "
        "test function, against its parameter k, as in Mohamed et al. (JMLR 2020), figure 2: measured "
        "(points, ± 1 standard error) and in closed form (lines, where known). The score function with "
        "the exact (oracle) optimal baseline is the paper's curve; the one with the optimal baseline "
        "estimated from a pilot is the practical estimator, and measures above it. Each panel's axes are "
        "linear where its values include 0 or negative ones, logarithmic otherwise. Numbers: variance_vs_k.csv.",
    ),
    "variance_vs_param": (
        "Gradient variance at θ₀ against the swept parameter",
        "tr Cov of the gradient estimate at θ₀ ({n}) against {param}, per {per}: measured (points, ± 1 "
        "standard error) and in closed form (lines, where known). Each panel's axes are linear where its "
        "values include 0 or negative ones (a deterministic estimate's variance of 0), logarithmic otherwise. "
        "Numbers: {csv}.",
    ),
    "variance_vs_samples": (
        "Gradient variance at θ₀ against samples N",
        "tr Cov of the N-sample gradient estimate at θ₀ against N, per {per}: measured (points, ± 1 standard "
        "error over seeds), in closed form (lines, where known), and the 1/N reference (dotted, through each "
        "estimator's value at the smallest N): independent samples divide the variance by N, so an "
        "estimator off that line draws its samples dependently (antithetic, quasi-Monte Carlo) or "
        "estimates something from them (a pilot-estimated baseline). Numbers: {csv}.",
    ),
    "work_normalized_variance_vs_param": (
        "At equal cost: variance × evaluations per estimate",
        "The variances above times the evaluations of f, ∇f or ∇²f one estimate costs, as each estimator "
        "declares it (evals_per_estimate: N for the score function, 2 per pair for ARM and DisARM, 2d per "
        "sample for the measure-valued estimator of a Gaussian mean, N + pilot with the pilot-estimated "
        "optimal baseline): the variance an estimator would reach with one evaluation's worth of work, "
        "so estimators that evaluate f more often per sample are compared at equal cost. Numbers: {csv}.",
    ),
    "work_normalized_variance_vs_distance": (
        "At equal cost: variance × evaluations per estimate against distance",
        "tr Cov of the gradient at θ₀ times the evaluations one estimate costs (evals_per_estimate, as each "
        "estimator declares it): the variance per unit of work, so that an estimator evaluating f more "
        "often per sample is not favoured by a comparison at equal N.",
    ),
    "bias_vs_param": (
        "Bias of the gradient at θ₀ against the swept parameter",
        "‖E ĝ − ∇L‖² at θ₀ against {param}: measured by each run's probe (points, the mean over seeds of an "
        "unbiased estimate, which can come out slightly negative, ± 1 standard error; points at one value set "
        "slightly apart) and exact (lines, where logged). Unbiased estimators have an exact bias² of 0 and "
        "should sit at 0 within a few of their standard errors. Numbers: {csv}.",
    ),
    "mse_split": (
        "Mean squared error at θ₀: bias² and variance",
        "E‖ĝ − ∇L‖² of the gradient estimate at θ₀ per estimator, split into the squared bias (hatched: the "
        "measured value, clipped at 0 for the bar) and the variance tr Cov[ĝ], means over seeds (θ₀ does not "
        "depend on the step size: each seed counts once). Each bar is annotated with the measured bias² ± 1 "
        "standard error and its exact value where logged (0 for an unbiased estimator, whose measured value "
        "should then be 0 within a few standard errors). Numbers: mse_split.csv.",
    ),
    "distance": (
        "Sections that need a distance",
        "They measure ‖θ_t − x‖ or ‖x − θ₀‖, which takes a problem with a known optimum x.",
    ),
    "at_start": (
        "Curves against step",
        "Convergence, loss, gradient variance along the trajectory and the problem's own curves are "
        "drawn against step t: a run that measured at θ₀ only has one point of each.",
    ),
    "convergence": (
        "Convergence",
        "‖θ_t − x‖ against step: median over seeds, band from the first to the third quartile. A "
        "diverged run counts as infinitely far after it stopped, so a curve ends where half its "
        "runs have diverged; each panel says how many did.",
    ),
    "outcomes": (
        "Outcomes",
        "Median final distance ‖θ_T − x‖ per step size and distance, with the number of diverged "
        "runs out of those completed in each cell.",
    ),
    "fair_comparison": (
        "A fair comparison",
        "Each estimator at its best step size on the grid for each distance (fewest median steps "
        "to tolerance, then fewest divergences): the steps it needs there, with the inter-quartile "
        "range over seeds. Hatched: the tolerance is not reached within the budget.",
    ),
    "loss": (
        "Loss",
        "L(θ_t) = E_q[f] against step: median over seeds, band from the first to the third quartile. "
        "A diverged run counts as infinitely bad after it stopped, so a curve ends where half its runs "
        "have diverged.",
    ),
    "variance_along_trajectory": (
        "Gradient variance along the trajectory",
        "Measured tr Cov of the gradient estimate at θ_t against step (median and inter-quartile "
        "band over seeds), and its exact value at θ_t (dashed, median over seeds) where the problem "
        "knows it for the estimator.",
    ),
    "bias_along_trajectory": (
        "Bias of the gradient along the trajectory",
        "‖E ĝ − ∇L‖² of the gradient estimate at θ_t against step, measured by each run's probe (median "
        "and inter-quartile band over seeds of an unbiased estimate, which can come out slightly negative) "
        "and exact (dashed, median over seeds) where logged. Drawn for a sweep with a biased estimator "
        "(its exact bias² at θ₀ is not 0, or was not derived): its bias moves with θ_t, while an unbiased "
        "estimator's stays at 0.",
    ),
    "training_vs_step": (
        "Training: the ELBO against step",
        "The training ELBO (per datum, on a fixed subset of the training data) and the test ELBO (held out) "
        "against step t: median over seeds with the inter-quartile band; a diverged run counts up to its last "
        "logged step. Higher is better. Final values: training.csv and the table below.",
    ),
    "training_vs_wall_time": (
        "Training: the ELBO against wall time",
        "The same curves against seconds. The runs log no time per step: each run's wall_time_s (the whole "
        "run, its variance probes and evaluation curves included) over its steps gives its seconds per step, "
        "and logged step t is placed at t × the median of that over the cell's seeds. So the axis is "
        "proportional to step within a curve, and compares estimators by their measured cost per step.",
    ),
    "training_vs_evaluations": (
        "Training: the ELBO against evaluations of f",
        "The same curves against the evaluations of f (or ∇f) per datum spent up to step t: t × "
        "evals_per_estimate, which each estimator declares per datum with the N samples of an estimate "
        "included (2 per antithetic pair for ARM and DisARM, 2d per sample for the measure-valued estimator). "
        "Estimators compared at equal cost rather than at equal steps.",
    ),
    "problem_curves": (
        "Curves of the problem",
        "The curves the problem declares, against step: median over seeds with the inter-quartile "
        "band; a diverged run counts up to its last logged step.",
    ),
    "trajectories": (
        "Trajectories in the plane",
        "θ_t of one run per estimator (lowest seed, its best step size at the distance nearest the "
        "founding D = 100√2), coloured by step, as in the original notebook. The animation plays "
        "once and stops on the last frame.",
    ),
}


def _figures(sub: dict, colors: dict, facets: Sequence[str]) -> list[Section]:
    """The sections of a sweep that is no θ₀ study, each figure's drawing deferred
    (:class:`Section`); ``facets``, the factors beyond the estimator, step size and distance,
    are panels (or ticks) inside each figure."""
    made: list[Section] = []
    kw = {"facets": list(facets)} if facets else {}

    def save(name: str, make: Callable[[], object], heading: str = "") -> None:
        made.append(Section(name, [f"{name}.png"], _png(make, f"{name}.png"), heading=heading))

    def skip(name: str, why: str) -> None:
        made.append(Section(name, note=why))

    start = sub["start"]
    measured = start[start["mean"].notna() & (start["problem.distance"] > 0)] if "problem.distance" in start else start
    at_distance = "problem.distance" in start and len(measured) > 0
    if sub["distance"]:
        if at_distance and measured["problem.distance"].nunique() < 2:
            if sub["distances"] > 1:  # the sweep has several: say why the figure is absent
                skip("variance_vs_distance", "Complete runs at one distance D only: no curve against D.")
        elif at_distance:
            save("variance_vs_distance", lambda: figures.variance_vs_distance(
                start, colors, "Gradient variance at θ₀ against distance D", **kw))
            work = sub["start_work"]
            if len(work) and (work["mean"].notna() & (work["problem.distance"] > 0)).any():
                save("work_normalized_variance_vs_distance", lambda: figures.variance_vs_distance(
                    work, colors, "At equal cost: gradient variance × evaluations per estimate at θ₀",
                    work=True, **kw))
        elif sub["study"]:
            skip("variance_vs_distance", f"Runs at θ₀ over several {sub['study']}, no distance D: see the variance "
                                         f"against {sub['study']} above.")
        else:
            skip("variance_vs_distance", "No complete run with a distance D > 0: nothing to draw against D.")
    elif not sub["at_start"]:
        skip("distance", "The problem has no optimum (its runs logged no distance): no variance against D, "
                         "convergence to tolerance, outcomes by final distance, fair comparison by steps to "
                         "tolerance, or trajectories in the plane.")
    if len(sub["split"]):
        save("mse_split", lambda: figures.mse_split(
            sub["split"], colors, "Mean squared error of the gradient at θ₀: bias² and variance per estimator", **kw))
    if sub["at_start"]:  # measured at θ₀ only: nothing against step, no outcome of a run
        return made
    if sub["distance"]:
        if len(sub["dist"]):
            save("convergence", lambda: figures.convergence(
                sub["dist"], sub["table"], sub["tol"], colors,
                r"Convergence: $\|\theta_t - x\|$, median and IQR over seeds", **kw))
        else:
            skip("convergence", "No complete run: no curve to draw.")
    elif len(sub["loss"]):
        save("loss", lambda: figures.curves({"loss": sub["loss"]}, colors, "Loss, median and IQR over seeds", **kw))
    else:
        skip("loss", "No complete run: no curve to draw.")
    if sub["distance"]:
        if len(sub["table"]):
            save("outcomes", lambda: figures.outcomes(sub["table"], "Outcomes: median final distance, diverged runs",
                                                      **kw))
        if sub["best"] is not None and len(sub["best"]):
            save("fair_comparison", lambda: figures.fair_comparison(
                sub["best"], colors, "Each estimator at its best step size: steps to tolerance", **kw))
        else:
            skip("fair_comparison", "No complete run: no step size to compare.")
    if len(sub["var"]):
        save("variance_along_trajectory", lambda: figures.variance_along(
            sub["var"], sub["table"], colors, "Gradient variance along the trajectory", exact=sub["exact"], **kw))
    else:
        skip("variance_along_trajectory", "No complete run: no curve to draw.")
    if len(sub["bias"]):
        save("bias_along_trajectory", lambda: figures.bias_along(
            sub["bias"], sub["table"], colors, "Squared bias of the gradient along the trajectory",
            exact=sub["bias_exact"], **kw))
    training = {key: band for key, band in sub["training"].items() if len(band)}
    if training:
        names = _and([figures.CURVE_LABELS.get(key, key).split(" (")[0] for key in training])
        for axis, label, against in TRAINING_AXES:
            if training_drawn(training, axis):
                save(f"training_vs_{axis}", lambda axis=axis, label=label, against=against: figures.curves(
                    training, colors, f"{names} against {against}, median and IQR over seeds", x=axis,
                    xlabel=label, **kw), heading=f"Training: {names} against {against}")
            elif axis == "evaluations":
                skip("training_vs_evaluations", "No estimator of the sweep declares what one estimate costs "
                                                "(evals_per_estimate): no axis of evaluations.")
    own = {key: band for key, band in sub["own"].items() if len(band)}
    if own:
        names = _and([figures.CURVE_LABELS.get(key, key).split(" (")[0] for key in own])
        save("problem_curves", lambda: figures.curves(own, colors, f"{names}, median and IQR over seeds", **kw),
             heading=f"Curves of the problem: {names}")
    if sub["distance"]:
        if sub["picks"]:
            gif = "trajectories.gif"
            png = _png(lambda: figures.trajectories(sub["picks"], "Trajectories θ_t in the plane", **kw),
                       "trajectories.png")

            def draw(out: Path, options: Options) -> None:
                png(out, options)
                figures.trajectory_gif(sub["picks"], colors, out / gif, frames=options.animation_frames,
                                       title="Trajectories θ_t in the plane", **kw)

            made.append(Section("trajectories", ["trajectories.png", gif], draw))
        else:
            skip("trajectories", "No complete 2-d run with a logged trajectory: nothing to draw in the plane.")
    return made


# The x axes of a model's training curves: the column of tables.training_bands, its label, its name.
TRAINING_AXES = (("step", "step t", "step"),
                 ("wall_time", "seconds (t × wall_time_s / steps)", "wall time"),
                 ("evaluations", "evaluations of f (or ∇f) per datum", "evaluations of f"))


def training_drawn(training: dict[str, pd.DataFrame], axis: str) -> bool:
    """Whether some training band has a value on ``axis`` beyond step 0 (an estimator that
    declares no cost has no evaluations axis)."""
    return any(band.loc[band["step"] > 0, axis].notna().any() for band in training.values())


def _and(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b, and c``."""
    return " and ".join(items) if len(items) < 3 else ", ".join(items[:-1]) + ", and " + items[-1]


# --- HTML -----------------------------------------------------------------------------

CSS = """
body { font-family: "DejaVu Sans", Verdana, sans-serif; margin: 2em auto; max-width: 1200px; color: #222;
       line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f2f2f2; } td.t, th.t { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } figure { margin: 1em 0 2em; }
figcaption { font-size: 0.9em; color: #444; max-width: 70em; }
code, pre { background: #f6f6f6; padding: 0.1em 0.3em; } pre { padding: 0.6em; overflow-x: auto; }
.scroll { max-width: 100%; overflow-x: auto; margin: 0.5em 0 1em; } .scroll table { margin: 0; }
.scroll.tall { max-height: 32em; overflow-y: auto; }
.warn { color: #b2182b; }
"""


def _e(x) -> str:
    return html.escape(str(x))


def _num(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "–"
        if np.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:.4g}"
    return _e(v)


def _table(frame: pd.DataFrame, text: Sequence[str] = (), tall: bool = False) -> str:
    head = "".join(f'<th class="{"t" if c in text else ""}">{_e(c)}</th>' for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="t">{_e(v)}</td>' if c in text else f"<td>{_num(v)}</td>" for c, v in zip(frame.columns, row)
        )
        rows.append(f"<tr>{cells}</tr>")
    # In a box that scrolls sideways: a sweep's many factors and columns never widen the page.
    return f'<div class="scroll{" tall" * tall}"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _data_uri(path: Path) -> str:
    kind = "image/gif" if path.suffix == ".gif" else "image/png"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _versions() -> str:
    items = [("python", platform.python_version())]
    for name in PACKAGES:
        try:
            items.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            items.append((name, "not installed"))
    return ", ".join(f"{n} {v}" for n, v in items)


def _when(ms) -> str:
    if ms is None or (isinstance(ms, float) and np.isnan(ms)):
        return "–"
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def _missing_html(sweep: Sweep) -> str:
    m = tables.missing(sweep)
    parent = sweep.parent
    parts = []
    if parent is None:
        parts.append('<p class="warn">No parent run carries this sweep id: the report covers the job runs found '
                     "with it, and is not logged to MLflow.</p>")
    elif parent["status"] != "FINISHED":
        parts.append(f'<p class="warn">The sweep\'s parent run is {_e(parent["status"])}'
                     + (" (still running, or stopped without closing it)." if parent["status"] == "RUNNING" else ".")
                     + "</p>")
    expected = m["expected"] if m["expected"] is not None else m["found"]
    if m["complete"] == expected and not m["incomplete"] and not m["absent"]:
        parts.append(f"<p>All {expected} jobs logged a complete run.</p>")
        return "".join(parts)
    parts.append(f'<p class="warn">{m["complete"]} of {expected} jobs logged a complete run; the tables and figures '
                 "use those only.</p>")
    if m["incomplete"]:
        parts.append(f"<p>{len(m['incomplete'])} run(s) did not complete (no summary metrics, or not FINISHED):</p>")
        parts.append(_table(pd.DataFrame(m["incomplete"]), text=("run_name", "status", "run_id")))
    if m["absent"]:
        parts.append(f"<p>{m['absent']} job(s) logged no run at all.</p>")
        if m["holes"]:
            parts.append("<p>Grid points with no run:</p>" + _table(pd.DataFrame(m["holes"]), text=("estimator",)))
    return "".join(parts)


# What each summary column holds, for the page's description of the table.
COLUMNS = {
    "runs": "completed runs",
    "failed": "failed runs",
    "diverged_fraction": "fraction diverged",
    "median_final_dist": "median final ‖θ_T − x‖",
    "median_steps_to_tol": "median steps to tolerance (T + 1 when never reached)",
    "median_final_loss": "median final loss L(θ_T)",
    "mean_grad_variance": "mean over the cell's completed runs, diverged ones included, of each run's mean "
                          "measured gradient variance over its logged points (one diverging run can dominate "
                          "it)",
    "median_grad_variance": "median over runs of the same",
    tables.RATIO: f"that variance over the {tables.REFERENCE}'s in the same cell",
}
# What each column of the training table holds.
TRAINING_COLUMNS = {
    "runs": "completed runs",
    "steps": "steps taken (the last logged step: T, or where a run diverged)",
    "evals_per_estimate": "evaluations of f (or ∇f) per datum one estimate costs, N included",
    "evals_per_datum": "evaluations per datum over the run (steps × evaluations per estimate)",
    "wall_time_per_estimate_s": "seconds per estimate (mean time of the loop's estimator calls)",
    "wall_time_s": "seconds per run",
    "median_final_elbo": "final training ELBO",
    "median_final_test_elbo": "final test ELBO",
}
FACTORS = {"step_size": "step size", "problem.distance": "distance"}
# Cosmetic names of a θ₀ study's facets in its figure titles; any other facet goes by its name.
FACET_LABELS = {"problem.f": "test function f"}


def _page(sweep: Sweep, out: Path, summary: pd.DataFrame, best: pd.DataFrame | None, sections: list,
          rebuild: str, training: pd.DataFrame | None = None) -> str:
    parent = sweep.parent or {"run_id": "–", "status": "–", "tags": {}, "metrics": {}}
    tags = parent["tags"]
    commits = set(sweep.runs["git_commit"].dropna()) | ({tags["git_commit"]} if "git_commit" in tags else set())
    diverged = int((sweep.runs["complete"] & (sweep.runs["diverged"] == 1)).sum())
    prov = [
        ("experiment", sweep.experiment),
        ("tracking store", redact_uri(sweep.uri)),
        ("sweep id", sweep.sweep_id),
        ("parent run", f"{parent['run_id']} ({parent['status']}), started {_when(parent.get('start_time'))}"),
        ("sweep overrides", tags.get("sweep_overrides", "–")),
        ("runs", f"{len(sweep.runs)} job runs found, {int(sweep.runs['complete'].sum())} complete, "
                 f"{diverged} diverged; jobs in the sweep: {tags.get('sweep_jobs', '–')}"),
        ("grid", ", ".join(f"{f}: {', '.join(_num(v) for v in sorted(sweep.runs[f].dropna().unique()))}"
                           for f in sweep.factors)),
        ("git commit", ", ".join(sorted(commits)) or "–"),
        ("packages (report)", _versions()),
        ("rebuild", rebuild),
    ]
    rows = "".join(
        f'<tr><th class="t">{_e(k)}</th><td class="t">{f"<code>{_e(v)}</code>" if k == "rebuild" else _e(v)}</td></tr>'
        for k, v in prov
    )
    csvs = ["summary.csv"] + (["fair_comparison.csv"] if best is not None else []) \
        + (["training.csv"] if training is not None else [])
    body = [
        f"<h1>mcgrad-bench report: sweep {_e(sweep.sweep_id)}</h1>",
        "<p>Built from the tracking store alone; no estimator was run. Files beside this page: "
        + ", ".join(f'<a href="{c}">{c}</a>' for c in csvs) + " and each figure as PNG.</p>",
        "<h2>Provenance</h2>", f'<div class="scroll"><table>{rows}</table></div>',
        "<h2>What is missing</h2>", _missing_html(sweep),
    ]
    n = 0
    for where, made in sections:
        if where:
            body.append(f"<h2>Setting{_e(where)}</h2>")
        for section in made:
            n += 1
            title, caption = CAPTIONS[section.name]
            title = section.heading or title
            caption = caption.format(**section.fill) if section.fill else caption
            body.append(f"<h2>{n}. {_e(title)}{_e(where)}</h2><figure>")
            if not section.files:
                body.append(f'<p class="warn">{_e(section.note)}</p>')
            for f in (f for f in section.files if not f.endswith(".csv")):
                # Embedded, so the page reads offline and inside the MLflow UI; the link opens the file.
                body.append(f'<p><a href="{_e(f)}"><img src="{_data_uri(out / f)}" alt="{_e(title)}"></a></p>')
            body.append(f"<figcaption>{_e(caption)}</figcaption></figure>")
    per = " × ".join(FACTORS.get(f, f) for f in sweep.factors)
    held = _and([COLUMNS[c] for c in summary.columns if c in COLUMNS])
    body += [
        "<h2>Tables</h2>",
        f"<p>Per {_e(per)} (the same numbers as <code>summary.csv</code>): {_e(held)}.</p>",
        _table(summary, text=("estimator",), tall=len(summary) > 40),
    ]
    if training is not None:
        body += [f"<p>Training (<code>training.csv</code>), per {_e(per)}, medians over seeds: "
                 f"{_e(_and([TRAINING_COLUMNS[c] for c in training.columns if c in TRAINING_COLUMNS]))}.</p>",
                 _table(training, text=("estimator",), tall=len(training) > 40)]
    for section in (s for _, made in sections for s in made):
        if section.name.startswith(("variance_vs_", "bias_vs_")) and section.name != "variance_vs_distance":
            csv = next(f for f in section.files if f.endswith(".csv"))
            body += [f'<p>{_e(section.heading)} (<code>{_e(csv)}</code>):</p>',
                     _table(pd.read_csv(out / csv), text=("estimator", "block", "problem.f"), tall=True)]
    if best is not None:
        body += [
            "<p>Fair comparison (<code>fair_comparison.csv</code>): each estimator's best step size per distance.</p>",
            _table(_fair(best, sweep.factors), text=("estimator",)),
        ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>mcgrad-bench report {_e(sweep.sweep_id)}</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
