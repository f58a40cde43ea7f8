"""What the report shows, computed from a :class:`~experiments.report.data.Sweep`: pure pandas.

A grid cell is one value of each factor (estimator, step size, distance, and any other param
the sweep varies); its runs are the seeds. Only complete runs (FINISHED, summary logged)
enter a statistic; the others are counted as failed. A diverged run counts as infinitely far
from the optimum after it stopped, so it pulls medians up instead of dropping out.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from experiments.report.data import FOUNDING_DISTANCE, Sweep

REFERENCE = "reparameterization"  # the estimator the variance ratio divides by
SUMMARY_COLUMNS = [
    "runs",
    "failed",
    "diverged_fraction",
    "median_final_dist",
    "median_steps_to_tol",
    "mean_grad_variance",
    f"variance_ratio_to_{REFERENCE}",
]
# Stand-in for +inf inside quantiles: numpy interpolates inf and inf to NaN.
_FAR = 1e300


def _distance_after_stop(done: pd.DataFrame) -> pd.Series:
    """Final distance, +inf where a diverged run logged a non-finite one."""
    return done["final_dist"].where(done["final_dist"].notna() | (done["diverged"] != 1), np.inf)


def summary_table(runs: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """One row per grid cell: counts, diverged fraction, medians, mean variance, variance ratio."""
    factors = list(factors)
    done = runs[runs["complete"]].assign(final=lambda d: _distance_after_stop(d))
    stats = done.groupby(factors, sort=True, dropna=False).agg(
        runs=("run_id", "size"),
        diverged_fraction=("diverged", "mean"),
        median_final_dist=("final", "median"),
        median_steps_to_tol=("steps_to_tol", "median"),
        mean_grad_variance=("mean_grad_variance", "mean"),
    )
    total = runs.groupby(factors, sort=True, dropna=False).size().rename("all")
    table = pd.concat([total, stats], axis=1).reset_index()
    table["runs"] = table["runs"].fillna(0).astype("int64")
    table["failed"] = (table.pop("all") - table["runs"]).astype("int64")
    others = [f for f in factors if f != "estimator"]
    ref = table.loc[table["estimator"] == REFERENCE, [*others, "mean_grad_variance"]]
    ref = ref.rename(columns={"mean_grad_variance": "_ref"})
    table = table.merge(ref, on=others, how="left")  # pandas matches NaN keys (a problem without a distance)
    table[f"variance_ratio_to_{REFERENCE}"] = table["mean_grad_variance"] / table.pop("_ref")
    return table[[*factors, *SUMMARY_COLUMNS]].sort_values(factors, kind="stable").reset_index(drop=True)


def best_steps(runs: pd.DataFrame, factors: Sequence[str]) -> pd.DataFrame:
    """Per estimator and distance (and other factor), its best step size on the grid.

    Best: fewest median steps to tolerance; ties (typically: never reached) go to the lower
    diverged fraction, then the smaller median final distance, then the smaller step.
    """
    factors = list(factors)
    table = summary_table(runs, factors)
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
    if "problem.dim" not in runs or "seed" not in runs:
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


# Step-0 metric -> (block, column) of :func:`variance_vs_k`.
_STUDY_KEYS = {
    name + ("" if block == "total" else f"/{block}"): (block, column)
    for block in ("mean", "scale", "total")
    for name, column in (("grad_variance", "value"), ("grad_variance_se", "se"), ("grad_variance_exact", "exact"))
}
VARIANCE_VS_K_COLUMNS = ["problem.f", "block", "estimator", "problem.k", "seeds", "value", "se", "exact"]


def variance_vs_k(sweep: Sweep) -> pd.DataFrame:
    """The variance study's numbers: tr Cov[ĝ] at θ₀ per test function, block, estimator and k.

    Blocks: ``mean`` (∇_μ) and ``scale`` (∇_σ) where a run learned σ, else ``total``. Per
    cell, over its n seeds with measured v_s and logged standard errors se_s: ``value`` =
    v̄ = (1/n) Σ v_s and ``se`` = √(Σ se_s²)/n (independent probes); ``exact`` is the closed
    form, NaN where unknown. Runs that differ only in step size repeat one measurement: each
    seed counts once. Empty unless :func:`~experiments.report.data.variance_study` holds.
    """
    from experiments.report.data import variance_study

    runs = sweep.runs[variance_study(sweep.runs)]
    if runs.empty:
        return pd.DataFrame(columns=VARIANCE_VS_K_COLUMNS)
    cell = ["problem.f", "block", "estimator", "problem.k"]
    keys = list(dict.fromkeys([f for f in sweep.factors if f != "step_size"] + ["problem.f", "problem.k"]))
    start = sweep.curves[(sweep.curves["step"] == 0) & sweep.curves["key"].isin(_STUDY_KEYS)
                         & sweep.curves["run_id"].isin(runs["run_id"])]
    block, column = zip(*start["key"].map(_STUDY_KEYS)) if len(start) else ((), ())
    start = start.assign(block=list(block), column=list(column))
    wide = start.pivot(index=["run_id", "block"], columns="column", values="value")
    wide = wide.reindex(columns=["value", "se", "exact"]).reset_index()
    # A run that learned σ also logs the total: its blocks are drawn instead.
    split = set(wide.loc[wide["block"] == "mean", "run_id"])
    wide = wide[(wide["block"] != "total") | ~wide["run_id"].isin(split)]
    wide = wide.merge(runs[["run_id", *keys, "seed"]], on="run_id")
    # The exact value is read from one run per cell (data.exact_picks): take it before deduplicating.
    exact = wide.groupby(cell, sort=True)["exact"].first()
    measured = wide.sort_values([*keys, "seed", "run_id"], kind="stable").drop_duplicates([*keys, "seed", "block"])
    measured = measured[measured["value"].notna()]
    stats = measured.groupby(cell, sort=True).agg(
        seeds=("value", "size"), value=("value", "mean"),
        se=("se", lambda v: math.sqrt(float(np.nansum(np.square(v)))) / len(v)),
    )
    out = stats.join(exact, how="left").reset_index()
    return out[VARIANCE_VS_K_COLUMNS].sort_values(cell, kind="stable").reset_index(drop=True)


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
