"""What the report shows, computed from a :class:`~experiments.report.data.Sweep`: pure pandas.

A grid cell is one value of each factor (estimator, step size, distance, and any other param
the sweep varies); its runs are the seeds. Only complete runs (FINISHED, summary logged)
enter a statistic; the others are counted as failed. A diverged run counts as infinitely far
from the optimum (or infinitely bad in loss) after it stopped, so it pulls medians up instead
of dropping out. A problem without an optimum has no distance: its runs are summarised by
their loss instead.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from experiments.report.data import Sweep, measured_distance, one_per_seed, study_facets, study_param, variance_study

REFERENCE = "reparameterization"  # the estimator the variance ratio divides by
RATIO = f"variance_ratio_to_{REFERENCE}"
FOUNDING_DISTANCE = 100.0 * math.sqrt(2.0)
# Every summary column, in order; a sweep's table has those its runs measured (summary_columns).
SUMMARY_COLUMNS = [
    "runs",
    "failed",
    "diverged_fraction",
    "median_final_dist",
    "median_steps_to_tol",
    "median_final_loss",
    "mean_grad_variance",
    "median_grad_variance",
    RATIO,
    "evals_per_estimate",
    "median_work_normalized_variance",
]
COST_COLUMNS = ("evals_per_estimate", "median_work_normalized_variance")
DISTANCE_COLUMNS = ("median_final_dist", "median_steps_to_tol")
LOSS_COLUMNS = ("median_final_loss", "median_grad_variance")
# Stand-in for +inf inside quantiles: numpy interpolates inf and inf to NaN.
_FAR = 1e300


def _after_stop(done: pd.DataFrame, key: str) -> pd.Series:
    """Final distance or loss, +inf where a diverged run logged a non-finite one."""
    return done[key].where(done[key].notna() | (done["diverged"] != 1), np.inf)


def has_distance(runs: pd.DataFrame) -> pd.Series:
    """Per run, whether it is of a problem with an optimum: a complete run measured a
    distance; any other run is judged by its ``problem.distance`` param."""
    return measured_distance(runs).where(runs["complete"], runs["problem.distance"].notna())


def summary_columns(runs: pd.DataFrame) -> list[str]:
    """The summary columns the runs have numbers for: the distance's where some run has an
    optimum and took steps, the loss's where some has none, the variance ratio where the
    reference ran."""
    flags = has_distance(runs)
    drop = set()
    done = runs[runs["complete"]]
    if not flags.any() or (len(done) and "steps" in done and (done["steps"] == 0).all()):
        drop |= set(DISTANCE_COLUMNS)  # no optimum, or runs measured at θ₀ only: no final distance
    if flags.all():
        drop |= set(LOSS_COLUMNS)
    if not (runs["estimator"] == REFERENCE).any():
        drop.add(RATIO)
    if "evals_per_estimate" not in runs or not runs["evals_per_estimate"].notna().any():
        drop |= set(COST_COLUMNS)
    return [c for c in SUMMARY_COLUMNS if c not in drop]


def _cell_stats(runs: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    """One row per grid cell, every column of :data:`SUMMARY_COLUMNS`."""
    if "evals_per_estimate" not in runs:  # a sweep logged before estimates declared their cost
        runs = runs.assign(evals_per_estimate=np.nan)
    done = runs[runs["complete"]].assign(final=lambda d: _after_stop(d, "final_dist"),
                                         loss=lambda d: _after_stop(d, "final_loss"),
                                         work=lambda d: d["mean_grad_variance"] * d["evals_per_estimate"])
    stats = done.groupby(factors, sort=True, dropna=False).agg(
        runs=("run_id", "size"),
        diverged_fraction=("diverged", "mean"),
        median_final_dist=("final", "median"),
        median_steps_to_tol=("steps_to_tol", "median"),
        median_final_loss=("loss", "median"),
        mean_grad_variance=("mean_grad_variance", "mean"),
        median_grad_variance=("mean_grad_variance", "median"),
        evals_per_estimate=("evals_per_estimate", "median"),
        median_work_normalized_variance=("work", "median"),
    )
    total = runs.groupby(factors, sort=True, dropna=False).size().rename("all")
    table = pd.concat([total, stats], axis=1).reset_index()
    table["runs"] = table["runs"].fillna(0).astype("int64")
    table["failed"] = (table.pop("all") - table["runs"]).astype("int64")
    others = [f for f in factors if f != "estimator"]
    ref = table.loc[table["estimator"] == REFERENCE, [*others, "mean_grad_variance"]]
    ref = ref.rename(columns={"mean_grad_variance": "_ref"})
    table = table.merge(ref, on=others, how="left")  # pandas matches NaN keys (a problem without a distance)
    table[RATIO] = table["mean_grad_variance"] / table.pop("_ref")
    return table[[*factors, *SUMMARY_COLUMNS]].sort_values(factors, kind="stable").reset_index(drop=True)


def summary_table(runs: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """One row per grid cell: counts, diverged fraction, medians, mean variance, variance ratio
    (the columns of :func:`summary_columns`)."""
    factors = list(factors)
    return _cell_stats(runs, factors)[[*factors, *summary_columns(runs)]]


def best_steps(runs: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Per estimator and distance (and other factor), its best step size on the grid.

    Best: fewest median steps to tolerance; ties (typically: never reached) go to the lower
    diverged fraction, then the smaller median final distance, then the smaller step.
    """
    factors = list(factors)
    table = _cell_stats(runs, factors)
    table = table[table["runs"] > 0]
    keys = [f for f in factors if f != "step_size"]
    ranked = table.sort_values([*keys, "median_steps_to_tol", "diverged_fraction", "median_final_dist", "step_size"],
                               kind="stable")
    best = ranked.groupby(keys, sort=True, dropna=False).head(1).reset_index(drop=True)
    done = runs[runs["complete"]]
    spread = done.groupby(factors, sort=True, dropna=False).agg(
        q25_steps_to_tol=("steps_to_tol", lambda s: s.quantile(0.25)),
        q75_steps_to_tol=("steps_to_tol", lambda s: s.quantile(0.75)),
        budget=("steps", "max") if "steps" in done else ("steps_to_tol", lambda s: np.nan),
    )
    best = best.merge(spread.reset_index(), on=factors, how="left")
    best["reached"] = (best["median_steps_to_tol"] <= best["budget"]) | best["budget"].isna()
    return best.sort_values(keys, kind="stable").reset_index(drop=True)


def at_equal_cost(frame: pd.DataFrame, runs: pd.DataFrame, keys: Sequence[str],
                  columns: Sequence[str] = ("value", "se", "exact")) -> pd.DataFrame:
    """``frame`` with ``columns`` times the evaluations one estimate costs in its cell (matched on
    ``keys``): variances at equal work, the work-normalised variance. Cells whose estimator
    declares no cost are left out; a frame without any gives an empty one."""
    keys = list(keys)
    if "evals_per_estimate" not in runs:
        return frame.iloc[:0]
    done = runs[runs["complete"] & runs["evals_per_estimate"].notna()]
    cost = done.groupby(keys, sort=True, dropna=False)["evals_per_estimate"].median().reset_index()
    out = frame.merge(cost, on=keys, how="inner")
    for column in columns:
        out[column] = out[column] * out["evals_per_estimate"]
    return out


def settings(runs: pd.DataFrame, extras: Sequence[str]) -> list[dict]:
    """The distinct values of the extra factors, sorted: one figure set each."""
    if not extras:
        return [{}]
    combos = runs[list(extras)].drop_duplicates().sort_values(list(extras), kind="stable")
    return [dict(zip(extras, row)) for row in combos.itertuples(index=False)]


def select(frame: pd.DataFrame, setting: dict) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in setting.items():
        mask &= (frame[key].isna() if pd.isna(value) else frame[key] == value).to_numpy()
    return frame[mask]


def label(setting: dict) -> str:
    return ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in setting.items())


def trajectory_runs(runs: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """The runs drawn in the plane: in 2-d settings, at the distance nearest the founding
    D = 100√2, each estimator at its best step size, lowest seed."""
    if "problem.dim" not in runs or "seed" not in runs or "problem.distance" not in factors:
        return runs.iloc[:0]
    done = runs[runs["complete"] & (runs["problem.dim"] == 2) & (runs["problem.distance"] > 0)]
    if done.empty:
        return done
    best = best_steps(done, factors)
    extras = [f for f in factors if f not in ("estimator", "step_size", "problem.distance")]
    picks = []
    for setting in settings(done, extras):
        cell = select(best, setting)
        d = cell["problem.distance"].to_numpy(dtype=float)
        nearest = d[np.argmin(np.abs(np.log(d / FOUNDING_DISTANCE)))]
        for row in cell[cell["problem.distance"] == nearest].itertuples(index=False):
            chosen = dict(zip(cell.columns, row))
            seeds = select(done, {f: chosen[f] for f in factors})
            picks.append(seeds.sort_values(["seed", "run_id"], kind="stable").iloc[0])
    return pd.DataFrame(picks).reset_index(drop=True) if picks else done.iloc[:0]


def bands(sweep: Sweep, key: str, *, far_after_stop: bool = True) -> pd.DataFrame:
    """Median and quartiles over seeds of curve ``key`` at each logged step, per grid cell.

    Steps: those the setting's runs that did not diverge logged (all runs of a setting share
    ``steps`` and ``log_points``). A diverged run counts as +inf after its last logged step,
    and at it if the value there is not finite; a quantile that reaches +inf is +inf (not drawn).
    With ``far_after_stop=False`` (a curve where +inf is not "worst", an ELBO or an accuracy)
    it counts only at the steps it logged.
    """
    factors, extras = list(sweep.factors), sweep.extras
    done = sweep.runs[sweep.runs["complete"]]
    curve = sweep.curves[sweep.curves["key"] == key]
    columns = [*factors, "step", "q25", "median", "q75"]
    if curve.empty or done.empty:
        return pd.DataFrame(columns=columns)
    wide = curve.pivot(index="run_id", columns="step", values="value")
    last = curve.groupby("run_id")["step"].max()
    out = []
    for setting in settings(done, extras):
        runs = select(done, setting)
        runs = runs[runs["run_id"].isin(wide.index)]
        steady = runs.loc[runs["diverged"] != 1, "run_id"]
        logged = wide.loc[steady if len(steady) else runs["run_id"]]
        grid = logged.columns[logged.notna().any(axis=0)]
        for cell, members in runs.groupby(factors, sort=True, dropna=False):
            ids = members["run_id"].to_numpy()
            values = wide.loc[ids, grid].to_numpy(dtype=float, copy=True)
            diverged = members["diverged"].to_numpy() == 1
            if diverged.any() and far_after_stop:
                steps = np.asarray(grid, dtype=np.int64)[None, :]
                ends = last.loc[ids[diverged]].to_numpy()[:, None]
                block = values[diverged]
                gone = (steps > ends) | ((steps == ends) & ~np.isfinite(block))
                values[diverged] = np.where(gone, _FAR, block)
            if np.isnan(values).any():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # a step no run logged: NaN is right
                    q = np.nanquantile(values, [0.25, 0.5, 0.75], axis=0)
            else:  # the usual case, and much faster
                q = np.quantile(values, [0.25, 0.5, 0.75], axis=0)
            q[q >= _FAR * 1e-10] = np.inf
            frame = pd.DataFrame({"step": np.asarray(grid, dtype=np.int64), "q25": q[0], "median": q[1], "q75": q[2]})
            for f, v in zip(factors, cell):
                frame[f] = v
            out.append(frame[columns])
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=columns)


def variance_at_start(sweep: Sweep) -> pd.DataFrame:
    """Measured tr Cov of the gradient at θ₀ across seeds (mean, SD, SE, n), and the exact value.

    θ₀ and the probe's random stream at step 0 do not depend on the step size, so runs that
    differ only in it repeat one measurement: each seed counts once.
    """
    keys = [f for f in sweep.factors if f != "step_size"]
    done = sweep.runs[sweep.runs["complete"]]
    start = sweep.curves[sweep.curves["step"] == 0]
    measured = start[start["key"] == "grad_variance"].merge(done[["run_id", *keys, "seed"]], on="run_id")
    measured = measured.sort_values([*keys, "seed", "run_id"], kind="stable").drop_duplicates([*keys, "seed"])
    stats = measured.groupby(keys, sort=True, dropna=False)["value"].agg(["mean", "std", "count"])
    stats["se"] = stats["std"] / np.sqrt(stats["count"])
    exact = start[start["key"] == "grad_variance_exact"].merge(done[["run_id", *keys]], on="run_id")
    exact = exact.groupby(keys, sort=True, dropna=False)["value"].first().rename("exact")
    return stats.join(exact, how="left").reset_index().rename(columns={"count": "seeds"})


# Step-0 measure -> column of :func:`variance_vs_param`; ``<measure>/<block>`` is that block's.
_STUDY_COLUMNS = {"grad_variance": "value", "grad_variance_se": "se", "grad_variance_exact": "exact"}
_BIAS_COLUMNS = {"grad_bias_sq": "value", "grad_bias_sq_se": "se", "grad_bias_sq_exact": "exact"}
VARIANCE_VS_K_COLUMNS = ["problem.f", "block", "estimator", "problem.k", "seeds", "value", "se", "exact"]


def _study_key(key: str) -> tuple[str, str] | None:
    """(block, column) of a step-0 measure, the block ``total`` without a suffix; None for others."""
    name, _, block = key.partition("/")
    column = _STUDY_COLUMNS.get(name)
    return None if column is None else (block or "total", column)


def _at_start(sweep: Sweep, keys, run_ids) -> pd.DataFrame:
    """Step-0 values of ``keys`` for ``run_ids``, from the curves and from :attr:`Sweep.start`."""
    both = pd.concat([sweep.curves[sweep.curves["step"] == 0], sweep.start], ignore_index=True)
    # A measure read both ways (the bias, in a sweep that draws it against step) counts once.
    both = both.drop_duplicates(["run_id", "key"])
    return both[both["key"].isin(set(keys)) & both["run_id"].isin(set(run_ids))]


def _pool(wide: pd.DataFrame, cell: list[str], keys: list[str]) -> pd.DataFrame:
    """Per cell, over its seeds s = 1…n (one run each) with measured v_s and logged standard
    errors se_s: ``seeds`` n, ``value`` v̄ = (1/n) Σ v_s, ``se`` √(Σ se_s²)/n (independent
    probes), and ``exact`` (the seed does not change it; the first logged, NaN if none)."""
    exact = wide.groupby(cell, sort=True, dropna=False)["exact"].first()
    measured = wide.sort_values([*keys, "seed", "run_id"], kind="stable").drop_duplicates([*keys, "seed"])
    measured = measured[measured["value"].notna()]
    stats = measured.groupby(cell, sort=True, dropna=False).agg(
        seeds=("value", "size"), value=("value", "mean"),
        se=("se", lambda v: math.sqrt(float(np.nansum(np.square(v)))) / len(v)),
    )
    return stats.join(exact, how="left").reset_index()


def study_columns(sweep: Sweep) -> tuple[str | None, list[str]]:
    """The θ₀ study's parameter (None: the sweep is no such study) and its other facets: the
    problem's (:func:`~experiments.report.data.study_facets`), then any other factor the sweep
    varies but the estimator (the hue) and the step size (step 0 does not depend on it)."""
    param = study_param(sweep.runs)
    if param is None:
        return None, []
    runs = sweep.runs[variance_study(sweep.runs)]
    facets = study_facets(runs, param)
    others = [f for f in sweep.factors if f not in (param, "estimator", "step_size", *facets) and runs[f].nunique() > 1]
    return param, facets + others


def variance_vs_param(sweep: Sweep) -> pd.DataFrame:
    """The θ₀ study's numbers: tr Cov[ĝ] at θ₀ per facet, block, estimator and value of the
    swept param (:func:`~experiments.report.data.study_param`; ``problem.k`` in the reference
    study's figure 2, where the facet is the test function ``problem.f``).

    Blocks: those of θ whose measures a run logged (``grad_variance/<block>``, as when a
    family learns several), else ``total``. Per cell, over its n seeds with measured v_s and
    logged standard errors se_s: ``value`` = v̄ = (1/n) Σ v_s and ``se`` = √(Σ se_s²)/n
    (independent probes); ``exact`` is the closed form, NaN where unknown. Runs that differ
    only in step size repeat one measurement: each seed counts once. Empty unless the sweep
    is such a study.
    """
    param, facets = study_columns(sweep)
    if param is None:
        return pd.DataFrame(columns=VARIANCE_VS_K_COLUMNS)
    runs = sweep.runs[variance_study(sweep.runs)]
    cell = [*facets, "block", "estimator", param]
    keys = list(dict.fromkeys([f for f in sweep.factors if f != "step_size"] + facets + [param]))
    study = {k: _study_key(k) for k in pd.concat([sweep.curves["key"], sweep.start["key"]]).unique()}
    study = {k: v for k, v in study.items() if v is not None}
    start = _at_start(sweep, study, runs["run_id"])
    block, column = zip(*start["key"].map(study)) if len(start) else ((), ())
    start = start.assign(block=list(block), column=list(column))
    wide = start.pivot(index=["run_id", "block"], columns="column", values="value")
    wide = wide.reindex(columns=["value", "se", "exact"]).reset_index()
    # A run that logged per-block measures also logs the total: its blocks are drawn instead.
    split = set(wide.loc[wide["block"] != "total", "run_id"])
    wide = wide[(wide["block"] != "total") | ~wide["run_id"].isin(split)]
    wide = wide.merge(runs[["run_id", *keys, "seed"]], on="run_id")
    out = _pool(wide, cell, [*keys, "block"])
    columns = [*cell, "seeds", "value", "se", "exact"]
    return out[columns].sort_values(cell, kind="stable").reset_index(drop=True)


variance_vs_k = variance_vs_param  # the name of the reference study's figure


def variance_vs_samples(sweep: Sweep) -> pd.DataFrame:
    """tr Cov[ĝ] at θ₀ per cell but the step size (step 0 does not depend on it), laid out as
    :func:`variance_vs_param` with the block ``total``, for a sweep with steps over N: per
    cell, over its n seeds, ``value`` v̄ = (1/n) Σ v_s and ``se`` √(Σ se_s²)/n from the logged
    standard errors where the runs' probes logged them (else from the spread over seeds), and
    ``exact`` where logged."""
    keys = [f for f in sweep.factors if f != "step_size"]
    cell = [*keys, "block"]
    runs = one_per_seed(sweep.runs, sweep.factors)
    names = {"grad_variance": "value", "grad_variance_se": "se", "grad_variance_exact": "exact"}
    start = _at_start(sweep, names, runs["run_id"])
    columns = [*[k for k in keys if k != "estimator"], "block", "estimator", "seeds", "value", "se", "exact"]
    if start.empty:
        return pd.DataFrame(columns=columns)
    wide = start.assign(column=start["key"].map(names)).pivot(index="run_id", columns="column", values="value")
    wide = wide.reindex(columns=list(names.values())).reset_index().merge(runs[["run_id", *keys, "seed"]],
                                                                          on="run_id").assign(block="total")
    out = _pool(wide, cell, keys)
    if wide["se"].isna().all():  # no logged standard error: the spread over seeds, where there are several
        spread = wide[wide["value"].notna()].groupby(cell, sort=True, dropna=False)["value"].agg(["std", "size"])
        out = out.drop(columns="se").merge(spread.reset_index(), on=cell, how="left")
        out["se"] = out["std"] / np.sqrt(out["size"])
    return out[columns].sort_values(cell, kind="stable").reset_index(drop=True)


def bias_vs_param(sweep: Sweep) -> pd.DataFrame:
    """The θ₀ study's bias: ‖E ĝ − ∇L‖² at θ₀ per facet, estimator and value of the swept param,
    where the runs logged it. ``value``: the mean over seeds of the probe's unbiased estimate
    ``grad_bias_sq`` (it can be slightly negative), ``se`` pooled as in :func:`variance_vs_param`,
    ``exact``: ``grad_bias_sq_exact`` (0 for an unbiased estimator; NaN where not derived)."""
    param, facets = study_columns(sweep)
    if param is None:
        return pd.DataFrame(columns=["estimator", "seeds", "value", "se", "exact"])
    cell = [*facets, "estimator", param]
    columns = [*cell, "seeds", "value", "se", "exact"]
    runs = sweep.runs[variance_study(sweep.runs)]
    start = _at_start(sweep, _BIAS_COLUMNS, runs["run_id"])
    if start.empty:
        return pd.DataFrame(columns=columns)
    wide = start.assign(column=start["key"].map(_BIAS_COLUMNS)).pivot(index="run_id", columns="column", values="value")
    keys = list(dict.fromkeys([f for f in sweep.factors if f != "step_size"] + facets + [param]))
    wide = wide.reindex(columns=["value", "se", "exact"]).reset_index().merge(runs[["run_id", *keys, "seed"]],
                                                                             on="run_id")
    out = _pool(wide, cell, keys)
    return out[columns].sort_values(cell, kind="stable").reset_index(drop=True)


MSE_SPLIT_COLUMNS = ["seeds", "bias_sq", "bias_sq_se", "bias_sq_exact", "variance", "variance_se", "mse"]


def mse_split(sweep: Sweep) -> pd.DataFrame:
    """The mean squared error of the estimate at θ₀ split into bias² and variance, per grid
    cell but the step size (step 0 does not depend on it), where the runs logged the bias.

    Over the cell's n seeds: ``bias_sq`` the mean of ``grad_bias_sq`` (unbiased, can be
    slightly negative), ``variance`` the mean of ``grad_variance``, each with its standard
    error pooled from the logged ones (√(Σ se_s²)/n); ``bias_sq_exact`` from
    ``grad_bias_sq_exact`` (0 for an unbiased estimator, NaN where not derived); ``mse`` =
    ``bias_sq`` + ``variance``, which is the probe's ``grad_mse`` (the same estimates) up to rounding.
    """
    keys = [f for f in sweep.factors if f != "step_size"]
    columns = [*keys, *MSE_SPLIT_COLUMNS]
    runs = one_per_seed(sweep.runs, sweep.factors)
    names = {"grad_bias_sq": "bias_sq", "grad_bias_sq_se": "bias_sq_se", "grad_bias_sq_exact": "bias_sq_exact",
             "grad_variance": "variance", "grad_variance_se": "variance_se"}
    start = _at_start(sweep, names, runs["run_id"])
    probed = set(start.loc[(start["key"] == "grad_bias_sq") & start["value"].notna(), "run_id"])
    start = start[start["run_id"].isin(probed)]
    if start.empty:
        return pd.DataFrame(columns=columns)
    wide = start.assign(column=start["key"].map(names)).pivot(index="run_id", columns="column", values="value")
    wide = wide.reindex(columns=list(names.values())).reset_index().merge(runs[["run_id", *keys, "seed"]],
                                                                          on="run_id")

    def pooled(se: pd.Series) -> float:
        return math.sqrt(float(np.nansum(np.square(se)))) / len(se)

    out = wide.groupby(keys, sort=True, dropna=False).agg(
        seeds=("bias_sq", "size"), bias_sq=("bias_sq", "mean"), bias_sq_se=("bias_sq_se", pooled),
        bias_sq_exact=("bias_sq_exact", "first"), variance=("variance", "mean"), variance_se=("variance_se", pooled),
    ).reset_index()
    out["mse"] = out["bias_sq"] + out["variance"]
    return out[columns].sort_values(keys, kind="stable").reset_index(drop=True)


def missing(sweep: Sweep) -> dict:
    """What the report could not use: failed or unfinished runs, and jobs with no run at all."""
    runs = sweep.runs
    parent = sweep.parent or {}
    expected = parent.get("tags", {}).get("sweep_jobs")
    expected = int(expected) if expected and str(expected).isdigit() else None
    incomplete = runs.loc[~runs["complete"], ["run_name", "status", "run_id"]]
    absent = max(0, expected - len(runs)) if expected is not None else 0
    # The grid is the product of the levels seen; when that matches the sweep's job count,
    # the combinations with no run are the jobs that never logged one.
    cols = [*sweep.factors, "seed"] if "seed" in runs else list(sweep.factors)
    holes: list[dict] = []
    if absent and len(runs):
        levels = [sorted(runs[c].dropna().unique().tolist()) for c in cols]
        if math.prod(len(v) for v in levels) == expected:
            seen = set(map(tuple, runs[cols].itertuples(index=False)))
            holes = [dict(zip(cols, combo)) for combo in itertools.product(*levels) if combo not in seen]
    return {
        "expected": expected,
        "found": len(runs),
        "complete": int(runs["complete"].sum()),
        "incomplete": incomplete.to_dict("records"),
        "absent": absent,
        "holes": holes,
    }


# The curves of a problem that trains a model: its ELBO on training data and on held-out data.
TRAINING_CURVES = ("elbo", "test_elbo")


def trains_a_model(sweep: Sweep) -> bool:
    """Whether the sweep's problem trains a model: its runs declare and log every curve of
    :data:`TRAINING_CURVES`."""
    logged = set(sweep.curves["key"]) if len(sweep.curves) else set()
    return all(k in sweep.problem_curves and k in logged for k in TRAINING_CURVES)


def _per_run_cost(sweep: Sweep) -> pd.DataFrame:
    """Per complete run: its last logged step (T, or where it diverged), the seconds per step
    ``wall_time_s`` / that step (the whole run's time, probes and curves included: the runs log
    no time per step), and the evaluations of f (or ∇f) per datum one step costs,
    ``evals_per_estimate`` (N included; NaN where the estimator declares no cost)."""
    done = sweep.runs[sweep.runs["complete"]]
    curve = sweep.curves[sweep.curves["key"].isin(TRAINING_CURVES)]
    last = curve.groupby("run_id")["step"].max().rename("last_step")
    out = done.join(last, on="run_id")
    steps = out["last_step"].where(out["last_step"] > 0)
    out["seconds_per_step"] = out["wall_time_s"] / steps
    out["evals_per_step"] = out["evals_per_estimate"] if "evals_per_estimate" in out else np.nan
    return out


def training_bands(sweep: Sweep, key: str) -> pd.DataFrame:
    """:func:`bands` of the training curve ``key`` (an ELBO: a diverged run counts up to its last
    logged step), with two more x axes per grid cell: ``wall_time`` = step × the median over the
    cell's runs of ``wall_time_s`` / steps, and ``evaluations`` = step × ``evals_per_estimate``
    (median over the cell's runs), the evaluations of f (or ∇f) per datum spent up to that step."""
    band = bands(sweep, key, far_after_stop=False)
    factors = list(sweep.factors)
    if band.empty:
        return band.assign(wall_time=pd.Series(dtype=float), evaluations=pd.Series(dtype=float))
    cost = _per_run_cost(sweep).groupby(factors, sort=True, dropna=False)[["seconds_per_step", "evals_per_step"]]
    out = band.merge(cost.median().reset_index(), on=factors, how="left")
    out["wall_time"] = out["step"] * out.pop("seconds_per_step")
    out["evaluations"] = out["step"] * out.pop("evals_per_step")
    return out


def training_table(sweep: Sweep) -> pd.DataFrame:
    """One row per grid cell of a sweep that trains a model: complete runs, steps, the cost of one
    estimate (``evals_per_estimate``, evaluations of f or ∇f per datum, N included;
    ``wall_time_per_estimate_s``, the mean time of the loop's estimator calls) and of the whole
    run (``evals_per_datum`` = steps × evaluations per estimate; ``wall_time_s``), and each
    training curve's final value (at the run's last logged step), all medians over the cell's
    runs (its seeds)."""
    factors = list(sweep.factors)
    runs = _per_run_cost(sweep)
    curve = sweep.curves[sweep.curves["key"].isin(TRAINING_CURVES)].sort_values(["run_id", "key", "step"])
    final = curve.groupby(["run_id", "key"])["value"].last().unstack("key")
    final = final.reindex(columns=list(TRAINING_CURVES)).rename(columns=lambda k: f"median_final_{k}")
    runs = runs.join(final, on="run_id").assign(evals_per_datum=lambda d: d["last_step"] * d["evals_per_step"])
    if "wall_time_per_estimate_s" not in runs:
        runs = runs.assign(wall_time_per_estimate_s=np.nan)
    columns = {"steps": "last_step", "evals_per_estimate": "evals_per_step", "evals_per_datum": "evals_per_datum",
               "wall_time_per_estimate_s": "wall_time_per_estimate_s", "wall_time_s": "wall_time_s",
               **{f"median_final_{k}": f"median_final_{k}" for k in TRAINING_CURVES}}
    table = runs.groupby(factors, sort=True, dropna=False).agg(
        runs=("run_id", "size"), **{name: (column, "median") for name, column in columns.items()})
    return table.reset_index().sort_values(factors, kind="stable").reset_index(drop=True)
