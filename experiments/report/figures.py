"""The report's figures, drawn with seaborn on matplotlib's Agg backend.

Each function takes frames from :mod:`experiments.report.tables` and returns a figure; it
reads nothing. Sizes, margins, fonts (DejaVu Sans, shipped with matplotlib), colours and
orderings are fixed, and :func:`save_png` writes no software version or time, so the same
sweep gives the same pixels and the same bytes. Layouts are laid out by hand in inches:
matplotlib's automatic layouts redraw each figure several times, the bulk of the cost.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a batch tool: no display, and the same renderer everywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import LogNorm, SymLogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator  # noqa: E402
from PIL import Image  # noqa: E402

RC = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("notebook", font_scale=0.85),
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "axes.titlesize": 9.5,
    "figure.titlesize": 12,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "figure.dpi": 100,
    # A fixed title height: matplotlib's automatic one measures every tick label of every panel.
    "axes.titley": 1.0,
}
PNG_METADATA = {"Software": None}
# Distances are categories on the bar chart's axis; matplotlib logs an INFO line saying so.
logging.getLogger("matplotlib.category").setLevel(logging.WARNING)
WARN = "#b2182b"


def palette(estimators: Sequence[str]) -> dict[str, tuple]:
    """A fixed colour per estimator: sorted names take the colourblind palette in turn."""
    colors = sns.color_palette("colorblind", max(len(estimators), 1))
    return dict(zip(sorted(estimators), colors))


def _g(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:g}"


def _same(a, b) -> bool:
    return (pd.isna(a) and pd.isna(b)) or a == b


def _index(levels: list, value) -> int:
    return next(i for i, v in enumerate(levels) if _same(v, value))


def _with_distance(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a distance column: NaN (one level) where the runs have no distance."""
    return frame if "problem.distance" in frame else frame.assign(**{"problem.distance": np.nan})


def _levels(values: pd.Series) -> list:
    """Sorted distinct values, NaN (if any) last, as one level."""
    return sorted(values.dropna().unique().tolist()) + ([np.nan] if values.isna().any() else [])


def _none(v):
    return None if pd.isna(v) else v


def _columns(frame: pd.DataFrame, facets: Sequence[str] = ()) -> list[tuple]:
    """The panel columns of a figure over distances: the distinct (D, *facet values), sorted,
    None for a missing value (a problem without a distance), last. Without facets, one per D."""
    f = _with_distance(frame)
    combos = {tuple(_none(v) for v in row) for row in f[["problem.distance", *facets]].itertuples(index=False)}
    return sorted(combos, key=lambda t: tuple((v is None, v if isinstance(v, (int, float)) else str(v)) for v in t))


def _at(frame: pd.DataFrame, column: tuple, facets: Sequence[str] = (), alpha=None) -> pd.DataFrame:
    """The rows of one panel column (and step size ``alpha``, where given)."""
    f = _with_distance(frame)
    mask = pd.Series(True, index=frame.index) if alpha is None else (frame["step_size"] == alpha)
    for c, v in zip(("problem.distance", *facets), column):
        mask &= f[c].isna() if v is None else f[c] == v
    return frame[mask]


def _short(facet: str) -> str:
    return facet.removeprefix("problem.")


def _value(v) -> str:
    return _g(v) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else str(v)


def _parts(column: tuple, facets: Sequence[str] = ()) -> list[str]:
    """``D = …`` (where there is one) and ``<facet> = …`` for a panel column's title."""
    d, *rest = column
    return ([] if d is None else [f"D = {_g(d)}"]) + [f"{_short(f)} = {_value(v)}" for f, v in zip(facets, rest)]


def _wrap(n: int, most: int) -> tuple[int, int]:
    """(rows, columns) of a grid of ``n`` panels, at most ``most`` a row."""
    ncols = max(1, min(n, most))
    return math.ceil(n / ncols), ncols


def _hide_rest(axes, n: int) -> list:
    """The first ``n`` axes in reading order; the others are hidden, not left empty."""
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return flat[:n]


def _facet_label(facets: Sequence[str], level: tuple) -> str:
    return ", ".join(f"{_short(f)} = {_value(v)}" for f, v in zip(facets, level))


def _spans_decades(values, decades: float = 2.0) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return v.size > 1 and math.log10(v.max() / v.min()) >= decades


def _layout(nrows: int, ncols: int, panel: tuple[float, float], *, left: float = 0.8, right: float = 0.25,
            bottom: float = 0.6, top: float = 0.6, wgap: float = 0.55, hgap: float = 0.55, **kw):
    """A figure of ``nrows`` × ``ncols`` panels of ``panel`` inches, margins and gaps in inches."""
    w, h = panel
    width = left + ncols * w + (ncols - 1) * wgap + right
    height = bottom + nrows * h + (nrows - 1) * hgap + top
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width, height), squeeze=False,
        gridspec_kw=dict(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                         wspace=wgap / w, hspace=hgap / h),
        **kw,
    )
    return fig, axes


def _legend_and_title(fig: Figure, handles: list, title: str, *, left: float, right: float) -> None:
    """The legend below the panels and the title above, the figure widened (panels keeping
    their size, centred) where either is wider than it: one panel column is narrow."""
    legend = fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), frameon=False,
                        bbox_to_anchor=(0.5, 0.0))
    suptitle = fig.suptitle(title, y=1 - 0.15 / fig.get_size_inches()[1], va="top")
    renderer = fig.canvas.get_renderer()
    W, H = fig.get_size_inches()
    need = max(t.get_window_extent(renderer).width for t in (legend, suptitle)) / fig.dpi + 0.3
    if need > W:
        pad = (need - W) / 2
        fig.set_size_inches(need, H)
        # The panels' grid was given its margins (fractions of the old width): give them anew.
        fig.axes[0].get_subplotspec().get_gridspec().update(left=(left + pad) / need, right=1 - (right + pad) / need)


def _inches(fig: Figure, x: float, y: float, w: float, h: float):
    """An axes at (x, y) from the bottom left, size w × h, all in inches."""
    W, H = fig.get_size_inches()
    return fig.add_axes((x / W, y / H, w / W, h / H))


def _log(ax, axis: str = "y") -> None:
    """Log scale without minor ticks: the theme does not draw them, and placing them is slow."""
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"{axis}axis").set_minor_locator(NullLocator())


def save_png(fig: Figure, path: Path, dpi: int) -> None:
    fig.savefig(path, dpi=dpi, metadata=PNG_METADATA)
    plt.close(fig)


def variance_vs_distance(start: pd.DataFrame, colors: dict, title: str, work: bool = False,
                         facets: Sequence[str] = ()) -> Figure:
    """Figure 1: tr Cov of the gradient at θ₀ against D (log–log), measured (mean ± SE) and exact;
    with ``work``, the same times the evaluations per estimate (``start`` scaled so). One panel
    per value of the ``facets`` (other swept factors), side by side."""
    data = start[start["problem.distance"] > 0].sort_values(["estimator", "problem.distance"])
    levels = _facet_levels(data, facets)
    with plt.rc_context(RC):
        fig, axes = _layout(*_wrap(len(levels), 3), (5.6, 3.9), left=0.95, right=0.3, bottom=0.65,
                            top=0.45 if not facets else 0.85, wgap=0.75, hgap=0.9)
        for ax, level in zip(_hide_rest(axes, len(levels)), levels):
            _distance_panel(ax, data[_facet_rows(data, facets, level)], colors, work)
            if facets:
                ax.set_title(_facet_label(facets, level))
            else:
                ax.set_title(title)
            if ax is axes[0, 0]:
                ax.legend(loc="upper left", frameon=True)
        if facets:
            fig.suptitle(title, y=1 - 0.1 / fig.get_size_inches()[1], va="top")
    return fig


def _distance_panel(ax, data: pd.DataFrame, colors: dict, work: bool) -> None:
    for est, d in data.groupby("estimator", sort=True):
        c, n = colors[est], int(d["seeds"].max())
        ax.errorbar(d["problem.distance"], d["mean"], yerr=d["se"].fillna(0), fmt="none", ecolor=c, capsize=3)
        sns.scatterplot(x=d["problem.distance"].to_numpy(), y=d["mean"].to_numpy(), ax=ax, color=c, s=36,
                        zorder=3, label=f"{est}: measured (mean ± SE, {n} seed{'s' * (n != 1)})")
        if d["exact"].notna().any():
            ax.plot(d["problem.distance"], d["exact"], color=c, linestyle="--", linewidth=1.3,
                    label=f"{est}: exact", zorder=2)
    exact = data["exact"].to_numpy(dtype=float)
    dists = np.sort(data["problem.distance"].unique()).astype(float)
    if np.isfinite(exact).any() and dists.size > 1:
        top = np.nanmax(exact[data["problem.distance"].to_numpy(dtype=float) == dists[-1]])
        ax.plot(dists, top * (dists / dists[-1]) ** 4, color="0.55", linestyle=":", linewidth=1.2,
                label="∝ D⁴ (guide)")
    _log(ax, "x")
    _log(ax, "y")
    ax.set_xlabel("distance D = ‖x − θ₀‖ (units of θ)")
    ax.set_ylabel("tr Cov[ĝ] × evaluations per estimate at θ₀" if work else "tr Cov[ĝ] at θ₀ (units of ∇L, squared)")
    if ax.get_legend() is not None:  # seaborn gives each panel a legend: the first panel's stands for all
        ax.get_legend().remove()


# What problem.f names, for runs logged before problems tagged their own formula (``formula``).
TEST_FUNCTIONS = {"square": "(x − k)²", "exp": "exp(−k x²)", "cos": "cos(k x)"}
# The total over θ is drawn only for runs that logged no block of it: θ is then one block.
BLOCK_LABELS = {"mean": r"$\nabla_\mu$", "scale": r"$\nabla_\sigma$", "total": r"$\nabla_\theta$",
                "concentration": r"$\nabla_\alpha$", "rate": r"$\nabla_\beta$", "alpha": r"$\nabla_a$",
                "beta": r"$\nabla_b$", "logits": r"$\nabla_\phi$"}
# Cosmetic labels of a study's swept param by name; any other is labelled by its name.
PARAM_LABELS = {"problem.k": "k (parameter of f)", "samples": "samples N per estimate"}


def _positive(values) -> bool:
    """Whether every finite value is positive: a log axis then shows them all. A value below
    1e-12 of the largest is a zero up to rounding (a deterministic estimate's variance)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return v.size > 0 and bool((v > 1e-12 * v.max()).all())


def _variance_scale(ax, values) -> None:
    """A panel's y scale: logarithmic for positive variances (the usual case), linear where some
    are 0 (a deterministic estimate) or negative, so that every point shows with its ticks."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if _positive(v):
        _log(ax, "y")
        # A panel often spans less than a decade: ticks at 1, 2, 5 × 10ⁿ keep it readable. Over
        # more than three decades those are too many (and LogLocator, asked to thin ticks it was
        # given sub-decade steps for, drops every one): powers of ten only, thinned to about six.
        span = math.log10(v.max() / v.min()) if v.size else 0.0
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)) if span <= 3.0
                                   else LogLocator(base=10, numticks=7))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _log_x(values) -> bool:
    """A study's x axis is logarithmic for positive values (k, N), linear where they include 0 or
    negative ones (a logit, k of (x − k)²)."""
    v = np.asarray(values, dtype=float)
    return v.size > 1 and bool((v > 0).all())


def _x_ticks(ax, ks: Sequence[float], logx: bool) -> None:
    """Ticks at the swept values, labelled; on a linear axis of many values, at most about 9
    (every other one), so that labels do not overlap."""
    shown = list(ks) if logx or len(ks) <= 9 else list(ks)[:: math.ceil(len(ks) / 9)]
    ax.set_xticks(shown, [_g(k) for k in shown])


def _facet_levels(data: pd.DataFrame, facets: Sequence[str], order: dict | None = None) -> list[tuple]:
    """The distinct values of the facet columns, one panel column each: in the order ``order``
    lists a facet's values (as text; the order the sweep listed them), else numbers by value
    before text sorted as text."""
    if not facets:
        return [()]
    order = order or {}
    combos = {tuple(row) for row in data[list(facets)].itertuples(index=False)}

    def rank(f: str, v) -> tuple:
        listed = order.get(f, [])
        number = isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and not pd.isna(v)
        return (listed.index(str(v)) if str(v) in listed else len(listed), (0, float(v), "") if number else (1, 0.0, str(v)))

    return sorted(combos, key=lambda t: tuple(rank(f, v) for f, v in zip(facets, t)))


def _facet_rows(data: pd.DataFrame, facets: Sequence[str], level: tuple) -> pd.Series:
    mask = pd.Series(True, index=data.index)
    for f, v in zip(facets, level):
        mask &= data[f].isna() if pd.isna(v) else data[f] == v
    return mask


def _facet_title(facets: Sequence[str], level: tuple, formulas: dict | None = None) -> str:
    """``f = …, `` for a test function (the formula its runs were tagged with), ``name = value, ``
    for another facet, nothing for NaN."""
    parts = []
    for f, v in zip(facets, level):
        if pd.isna(v):
            continue
        formula = (formulas or {}).get(v) or f"f(x) = {TEST_FUNCTIONS.get(v, v)}"
        parts.append(formula if f == "problem.f" else f"{_short(f)} = {_value(v)}")
    return "".join(p + ", " for p in parts)


def variance_vs_param(data: pd.DataFrame, colors: dict, title: str, param: str, facets: Sequence[str] = (),
                      samples: str = "N = 1", work: bool = False, formulas: dict | None = None,
                      notes: dict | None = None, order: dict | None = None) -> Figure:
    """Gradient variance at θ₀ against the study's param, as the reference study's figure 2
    (against k): one panel per facet (columns) and block of θ (rows), measured (mean ± 1 SE)
    and exact (lines; none where unknown). ``data`` is :func:`tables.variance_vs_param`'s
    frame. Each column has its own x values (a test function its own k); x is logarithmic for
    positive values, linear where they include 0 or negatives; y per panel as
    :func:`_variance_scale` says. Against ``samples`` (N), a dotted 1/N reference through each
    estimator's value at the smallest N. With ``work``, the values are variances times
    evaluations per estimate (:func:`tables.at_equal_cost`). ``notes``: a description per
    estimator for the legend (what its baseline is). ``order``: of the facets' values, as
    :func:`_facet_levels` takes it."""
    levels = _facet_levels(data, facets, order)
    # The blocks in order, the total (logged alone by a run that learns one block) last.
    blocks = sorted(set(data["block"]) - {"total"}) + (["total"] if "total" in set(data["block"]) else [])
    per_n = param == "samples"
    with plt.rc_context(RC):
        fig, axes = _layout(len(blocks), len(levels), (3.0, 2.3), left=1.15, bottom=1.05, top=0.7, wgap=0.6,
                            hgap=0.6, sharex="col")
        for j, level in enumerate(levels):
            column = data[_facet_rows(data, facets, level)]
            ks = sorted(column[param].unique())
            logx = _log_x(ks)
            for i, b in enumerate(blocks):
                ax = axes[i, j]
                cell = column[column["block"] == b]
                shown = [cell[["value", "exact"]].to_numpy().ravel()]
                for est, e in cell.groupby("estimator", sort=True):
                    e = e.sort_values(param)
                    k, v, se = (e[c].to_numpy(dtype=float) for c in (param, "value", "se"))
                    ax.errorbar(k, v, yerr=np.nan_to_num(se), fmt="o", markersize=4, color=colors[est], capsize=2.5,
                                elinewidth=1, zorder=3)
                    known = np.isfinite(e["exact"].to_numpy(dtype=float))
                    if known.any():  # NaN: no closed form for this estimator, so no line
                        ax.plot(k[known], e["exact"].to_numpy(dtype=float)[known], color=colors[est], linewidth=1.2,
                                zorder=2)
                    if per_n and len(k) > 1:
                        ref = e["exact"].to_numpy(dtype=float)
                        first = ref[0] if np.isfinite(ref[0]) else v[0]
                        if np.isfinite(first):
                            line = first * k[0] / k
                            ax.plot(k, line, color=colors[est], linestyle=":", linewidth=1.1, zorder=1)
                            shown.append(line)
                if logx:
                    _log(ax, "x")
                _variance_scale(ax, np.concatenate(shown))
                _x_ticks(ax, ks, logx)
                ax.set_title(_facet_title(facets, level, formulas) + f"gradient {BLOCK_LABELS.get(b, b)}")
                ax.set_xlabel(PARAM_LABELS.get(param, param) if i == len(blocks) - 1 else "")
                measure = "tr Cov × evaluations" if work else "tr Cov"
                ax.set_ylabel(f"{measure} of the {BLOCK_LABELS.get(b, b)} estimate\n({samples}; units of ∇L, squared)"
                              if j == 0 else "")
        notes = notes or {}
        handles = [Line2D([], [], color=colors[e], linewidth=2, label=f"{e}: {notes[e]}" if e in notes else e)
                   for e in sorted(set(data["estimator"]))]
        n = int(data["seeds"].max()) if len(data) else 0
        handles.append(Line2D([], [], color="0.4", marker="o", markersize=4, linestyle="none",
                              label=f"measured: mean ± 1 SE ({n} seed{'s' * (n != 1)})"))
        handles.append(Line2D([], [], color="0.4", linewidth=1.2, label="exact (where known)"))
        if per_n:
            handles.append(Line2D([], [], color="0.4", linestyle=":", linewidth=1.1,
                                  label="∝ 1/N (reference, through the smallest N)"))
        _legend_and_title(fig, handles, title, left=1.15, right=0.25)
    return fig


def variance_vs_k(data: pd.DataFrame, colors: dict, title: str, samples: str = "N = 1") -> Figure:
    """The reference study's figure 2: :func:`variance_vs_param` against ``problem.k`` per test function."""
    return variance_vs_param(data, colors, title, "problem.k", ["problem.f"], samples)


def _symlog_threshold(values, se, exact) -> float | None:
    """A panel's symlog band, at its measurements' noise (their median positive standard
    error), when a real bias exceeds that noise a hundredfold (an exact bias², or a measured one
    beyond 3 SE): the estimates at 0 ± noise then stay visible beside it. None: a linear axis."""
    v, s, x = (np.asarray(a, dtype=float) for a in (values, se, exact))
    real = np.concatenate([np.abs(v[np.abs(v) > 3 * s]), np.abs(x)])
    real = real[np.isfinite(real)]
    noise = s[np.isfinite(s) & (s > 0)]
    if not real.size or not noise.size or real.max() <= 100 * np.median(noise):
        return None
    return float(10.0 ** math.floor(math.log10(np.median(noise))))


def _dodge(x: np.ndarray, i: int, n: int, ks: Sequence[float], logx: bool) -> np.ndarray:
    """x shifted for the i-th of n estimators, so that points at one x do not hide each other."""
    shift = (i - (n - 1) / 2) * 0.12 / max(n, 1)
    if logx:
        return x * 10.0 ** (shift * math.log10(max(ks) / min(ks)) / max(len(ks) - 1, 1))
    width = (max(ks) - min(ks)) / max(len(ks) - 1, 1) if len(ks) > 1 else 1.0
    return x + shift * width


def bias_vs_param(data: pd.DataFrame, colors: dict, title: str, param: str, facets: Sequence[str] = (),
                  formulas: dict | None = None, order: dict | None = None) -> Figure:
    """The squared bias ‖E ĝ − ∇L‖² at θ₀ against the study's param: one panel per facet,
    measured (the probe's unbiased estimate, mean ± 1 SE; points of one x dodged apart) and
    exact (lines, where logged; 0 for an unbiased estimator). Each panel's y is linear, symlog
    beside a large bias, so that zeros and negative estimates show.
    ``data`` is :func:`tables.bias_vs_param`'s frame; ``order`` as :func:`_facet_levels` takes it."""
    levels = _facet_levels(data, facets, order)
    ests = sorted(set(data["estimator"]))
    with plt.rc_context(RC):
        fig, axes = _layout(1, len(levels), (3.4, 2.6), left=1.15, bottom=1.05, top=0.7, wgap=0.8)
        for j, level in enumerate(levels):
            ax = axes[0, j]
            ax.axhline(0.0, color="0.3", linewidth=0.8, zorder=1)
            cell = data[_facet_rows(data, facets, level)]
            ks = sorted(cell[param].unique())  # each facet its own values (a test function its own k)
            logx = _log_x(ks)
            for est, e in cell.groupby("estimator", sort=True):
                e = e.sort_values(param)
                k, v, se, exact = (e[c].to_numpy(dtype=float) for c in (param, "value", "se", "exact"))
                known = np.isfinite(exact)
                if known.any():
                    ax.plot(k[known], exact[known], color=colors[est], linewidth=1.2, zorder=2)
                ax.errorbar(_dodge(k, ests.index(est), len(ests), ks, logx), v, yerr=np.nan_to_num(se), fmt="o",
                            markersize=4, color=colors[est], capsize=2.5, elinewidth=1, zorder=3)
            if logx:
                _log(ax, "x")
            linthresh = _symlog_threshold(cell["value"], cell["se"], cell["exact"])
            if linthresh is not None:
                ax.set_yscale("symlog", linthresh=linthresh)
                ax.yaxis.set_minor_locator(NullLocator())
            _x_ticks(ax, ks, logx)
            ax.set_title(_facet_title(facets, level, formulas) + f"gradient {BLOCK_LABELS['total']}")
            ax.set_xlabel(PARAM_LABELS.get(param, param))
            ax.set_ylabel("‖E ĝ − ∇L‖² at θ₀\n(units of ∇L, squared)" if j == 0 else "")
        handles = [Line2D([], [], color=colors[e], linewidth=2, label=e) for e in ests]
        n = int(data["seeds"].max()) if len(data) else 0
        handles.append(Line2D([], [], color="0.4", marker="o", markersize=4, linestyle="none",
                              label=f"measured: mean ± 1 SE ({n} seed{'s' * (n != 1)})"))
        handles.append(Line2D([], [], color="0.4", linewidth=1.2, label="exact (0: unbiased)"))
        _legend_and_title(fig, handles, title, left=1.15, right=0.25)
    return fig


def _e3(x: float) -> str:
    return "–" if pd.isna(x) else f"{x:.3g}"


def mse_split(data: pd.DataFrame, colors: dict, title: str, facets: Sequence[str] = ()) -> Figure:
    """The mean squared error of the estimate at θ₀ per estimator as one bar: bias² (hatched;
    the measured value clipped at 0) then the variance, one panel per distance (where the
    runs have one). Each bar is annotated with the measured bias² ± SE, the exact bias² where
    logged, and the variance. ``data`` is :func:`tables.mse_split`'s frame; one panel per
    distance and value of the ``facets`` (other swept factors)."""
    data = _with_distance(data)
    dists = _columns(data, facets)
    ests = sorted(set(data["estimator"]))
    n_est = len(ests)
    with plt.rc_context(RC):
        shape = _wrap(len(dists), 4) if facets else (1, len(dists))
        fig, axes = _layout(*shape, (4.4, 0.8 * n_est + 0.2), left=0.35, right=0.35, bottom=1.1, top=0.75,
                            wgap=0.45, hgap=0.9)
        for ax, d in zip(_hide_rest(axes, len(dists)), dists):
            cell = _at(data, d, facets)
            rows = {r["estimator"]: r for r in cell.to_dict("records")}
            top = max([r["mse"] for r in rows.values() if np.isfinite(r["mse"])] + [0.0])
            for i, est in enumerate(ests):
                r = rows.get(est)
                if r is None:
                    continue
                y = n_est - 1 - i  # the first estimator on top
                bias = max(r["bias_sq"], 0.0) if np.isfinite(r["bias_sq"]) else 0.0
                var = r["variance"] if np.isfinite(r["variance"]) else 0.0
                ax.barh(y, bias, height=0.4, color=colors[est], alpha=0.55, hatch="////", edgecolor="0.2",
                        linewidth=0.6)
                ax.barh(y, var, left=bias, height=0.4, color=colors[est], edgecolor="0.2", linewidth=0.6)
                exact = "" if pd.isna(r["bias_sq_exact"]) else f" (exact {_e3(r['bias_sq_exact'])})"
                text = (f"{est}\nbias² {_e3(r['bias_sq'])} ± {_e3(r['bias_sq_se'])}{exact}, "
                        f"variance {_e3(r['variance'])}")
                ax.text(0.01, y + 0.23, text, transform=ax.get_yaxis_transform(), fontsize=7, va="bottom", ha="left",
                        linespacing=1.15)
            ax.set_ylim(-0.4, n_est - 0.3)
            ax.set_xlim(0, top * 1.05 if top > 0 else 1.0)
            ax.set_yticks([])
            n = int(cell["seeds"].max()) if len(cell) else 0
            ax.set_title(f"mean over {n} seed{'s' * (n != 1)}" + "".join(", " + p for p in _parts(d, facets)))
            ax.set_xlabel("E‖ĝ − ∇L‖² at θ₀ (units of ∇L, squared)")
        handles = [Patch(facecolor="0.6", alpha=0.55, hatch="////", edgecolor="0.2",
                         label="bias² (measured, clipped at 0)"),
                   Patch(facecolor="0.6", edgecolor="0.2", label="variance tr Cov[ĝ]")]
        _legend_and_title(fig, handles, title, left=0.35, right=0.35)
    return fig


# Cosmetic labels of curves by name; any other curve is labelled by its name.
CURVE_LABELS = {"elbo": "ELBO (nats)", "test_accuracy": "test accuracy (fraction)", "test_elbo": "test ELBO (nats)",
                "grad_variance": r"tr Cov[ĝ] at $\theta_t$", "loss": r"loss L($\theta_t$)"}


def curves(bands: dict[str, pd.DataFrame], colors: dict, title: str, facets: Sequence[str] = (), *,
           x: str = "step", xlabel: str = "step t") -> Figure:
    """Curves against step (or the column ``x`` of each band, labelled ``xlabel``), median and
    IQR over seeds: rows step sizes (and values of the ``facets``, other swept factors), columns
    the keys of ``bands`` (each a :func:`tables.bands` frame), hue estimator."""
    keys = [k for k in bands if len(bands[k])]
    levels = _facet_levels(pd.concat([bands[k] for k in keys]), facets)
    alphas = [(a, level) for a in _levels(pd.concat([bands[k]["step_size"] for k in keys])) for level in levels]
    with plt.rc_context(RC):
        fig, axes = _layout(len(alphas), len(keys), (3.2, 2.1), left=0.95, bottom=1.0, top=0.75, wgap=0.75,
                            hgap=0.55, sharex=True)
        for j, key in enumerate(keys):
            logy = key == "grad_variance" and _spans_decades(bands[key][["q25", "median", "q75"]].to_numpy().ravel())
            for i, (a, level) in enumerate(alphas):
                ax = axes[i, j]
                cell = bands[key][(bands[key]["step_size"] == a) if pd.notna(a) else bands[key]["step_size"].isna()]
                cell = cell[_facet_rows(cell, facets, level)]
                for est, e in cell.groupby("estimator", sort=True):
                    t = e[x].to_numpy(dtype=float)
                    lo, mid, hi = (e[c].replace([np.inf, -np.inf], np.nan).to_numpy(dtype=float)
                                   for c in ("q25", "median", "q75"))
                    ax.fill_between(t, lo, hi, color=colors[est], alpha=0.25, linewidth=0)
                    ax.plot(t, mid, color=colors[est], linewidth=1.4)
                if logy:
                    _log(ax)
                ax.set_title(f"{CURVE_LABELS.get(key, key).split(' (')[0]}, α = {_g(a)}"
                             + "".join(f", {_short(f)} = {_value(v)}" for f, v in zip(facets, level)))
                ax.set_xlabel(xlabel if i == len(alphas) - 1 else "")
                ax.set_ylabel(CURVE_LABELS.get(key, key))
        ests = sorted(set().union(*(bands[k]["estimator"] for k in keys)))
        handles = [Line2D([], [], color=colors[e], linewidth=2, label=e) for e in ests]
        handles.append(Patch(color="0.6", alpha=0.4, label="inter-quartile range over seeds (line: median)"))
        _legend_and_title(fig, handles, title, left=0.95, right=0.25)
    return fig


def _grid(bands: pd.DataFrame, table: pd.DataFrame, colors: dict, *, ylabel: str, title: str,
          tolerance: pd.DataFrame | None = None, exact: pd.DataFrame | None = None, signed: bool = False,
          facets: Sequence[str] = ()) -> Figure:
    """Median and IQR over seeds against step: rows step sizes, columns distances (and values of
    the ``facets``, other swept factors), hue estimator; ``exact`` (bands too), where given,
    dashed. ``signed``: values may be 0 or negative, so the y axis stays linear."""
    levels = _facet_levels(table, facets)
    alphas = [(a, level) for a in _levels(table["step_size"]) for level in levels]
    dists = _levels(_with_distance(table)["problem.distance"])
    exact = exact if exact is not None and len(exact) else None
    nr, nc = len(alphas), len(dists)
    with plt.rc_context(RC):
        fig, axes = _layout(nr, nc, (2.7, 1.9), left=0.9, bottom=1.2, top=0.75, wgap=0.45, hgap=0.5,
                            sharex=True, sharey="col")
        values = bands[["q25", "median", "q75"]].to_numpy().ravel()
        if exact is not None:
            values = np.concatenate([values, exact["median"].to_numpy()])
        logy = not signed and _spans_decades(values)
        for i, (a, level) in enumerate(alphas):
            for j, d in enumerate(dists):
                ax = axes[i, j]
                d = (_none(d), *level)  # the panel: its distance and the facets' values
                cell = _at(bands, d, facets, a)
                for est, e in cell.groupby("estimator", sort=True):
                    t = e["step"].to_numpy()
                    lo, mid, hi = (e[k].replace(np.inf, np.nan).to_numpy() for k in ("q25", "median", "q75"))
                    ax.fill_between(t, lo, hi, color=colors[est], alpha=0.25, linewidth=0)
                    ax.plot(t, mid, color=colors[est], linewidth=1.4)
                    gone = np.flatnonzero(np.isinf(e["median"].to_numpy()))
                    if gone.size and gone[0] > 0:  # the median run diverged: mark where its curve ends
                        ax.plot(t[gone[0] - 1], mid[gone[0] - 1], marker="X", markersize=8, color=colors[est],
                                markeredgecolor=WARN, linestyle="none")
                if exact is not None:
                    for est, e in _at(exact, d, facets, a).groupby("estimator", sort=True):
                        ax.plot(e["step"].to_numpy(), e["median"].replace(np.inf, np.nan).to_numpy(),
                                color=colors[est], linestyle="--", linewidth=1.1)
                if tolerance is not None:
                    tol = _at(tolerance, d, facets, a)["tol"]
                    if len(tol) and np.isfinite(tol.iloc[0]) and tol.iloc[0] > 0:
                        ax.axhline(tol.iloc[0], color="0.4", linestyle=":", linewidth=1)
                notes = []
                cells = _at(table, d, facets, a)
                for r in cells.to_dict("records"):
                    n = r["runs"]
                    k = round(r["diverged_fraction"] * n) if n else 0
                    what = ([f"{k}/{n} diverged"] if k else []) + ([f"{r['failed']} failed"] if r["failed"] else [])
                    if what:
                        notes.append(f"{r['estimator']}: {', '.join(what)}")
                if notes:
                    ax.text(0.02, 0.03, "\n".join(notes), transform=ax.transAxes, fontsize=7, color=WARN,
                            va="bottom", ha="left", bbox=dict(facecolor="white", alpha=0.8, linewidth=0, pad=1.5))
                if logy:
                    _log(ax)
                ax.set_title(f"α = {_g(a)}" + "".join(", " + p for p in _parts(d, facets)))
                ax.set_xlabel("step t" if i == nr - 1 else "")
                ax.set_ylabel(ylabel if j == 0 else "")
        handles = [Line2D([], [], color=colors[e], linewidth=2, label=e) for e in sorted(colors)]
        handles.append(Patch(color="0.6", alpha=0.4, label="inter-quartile range over seeds"))
        if exact is not None:
            handles.append(Line2D([], [], color="0.4", linestyle="--", label="exact (median over seeds)"))
        handles.append(Line2D([], [], color="0.5", marker="X", markeredgecolor=WARN, linestyle="none",
                              label="median run diverged after this step"))
        if tolerance is not None:
            handles.append(Line2D([], [], color="0.4", linestyle=":", label="tolerance·D"))
        _legend_and_title(fig, handles, title, left=0.9, right=0.25)
    return fig


def convergence(bands: pd.DataFrame, table: pd.DataFrame, tolerance: pd.DataFrame, colors: dict, title: str,
                facets: Sequence[str] = ()) -> Figure:
    """Figure 2: ‖θ_t − x‖ against step; diverged and failed runs are counted in each panel."""
    return _grid(bands, table, colors, ylabel=r"$\|\theta_t - x\|$ (units of θ)", title=title, tolerance=tolerance,
                 facets=facets)


def variance_along(bands: pd.DataFrame, table: pd.DataFrame, colors: dict, title: str,
                   exact: pd.DataFrame | None = None, facets: Sequence[str] = ()) -> Figure:
    """Figure 5: measured gradient variance at θ_t against step, and the exact where logged."""
    return _grid(bands, table, colors, ylabel=r"tr Cov[ĝ] at $\theta_t$", title=title, exact=exact, facets=facets)


def bias_along(bands: pd.DataFrame, table: pd.DataFrame, colors: dict, title: str,
               exact: pd.DataFrame | None = None, facets: Sequence[str] = ()) -> Figure:
    """The measured bias² of the estimate at θ_t against step (a signed estimate: linear axis),
    and the exact where logged."""
    return _grid(bands, table, colors, ylabel=r"‖E ĝ − ∇L‖² at $\theta_t$", title=title, exact=exact, signed=True,
                 facets=facets)


def _row(rows: list[tuple], r: dict, facets: Sequence[str]) -> int:
    """The index of row ``r``'s (step size, facets' values) among ``rows``."""
    return next(i for i, (a, level) in enumerate(rows)
                if _same(a, r["step_size"]) and all(_same(v, r[f]) for f, v in zip(facets, level)))


def outcomes(table: pd.DataFrame, title: str, facets: Sequence[str] = ()) -> Figure:
    """Figure 3: per estimator, median final distance over step size (and values of the
    ``facets``, other swept factors, a row each) × distance, diverged counts."""
    table = _with_distance(table)
    ests = sorted(table["estimator"].unique())
    levels = _facet_levels(table, facets)
    alphas = [(a, level) for a in _levels(table["step_size"]) for level in levels]
    dists = _levels(table["problem.distance"])
    finite = table["median_final_dist"].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (1e-3, 1.0)
    norm = LogNorm(vmin=lo, vmax=max(hi, lo * 10))
    cmap = sns.color_palette("viridis", as_cmap=True)
    panel = (0.95 * len(dists), max(0.6 * len(alphas), 1.2))  # room for the colour bar's label
    with plt.rc_context(RC):
        # Facets' values lengthen the row labels: room for them left of each panel.
        fig, axes = _layout(1, len(ests), panel, left=0.95 if not facets else 2.3, right=1.45, bottom=0.65, top=0.85,
                            wgap=0.9 if not facets else 2.3)
        for ax, est in zip(axes[0], ests):
            t = table[table["estimator"] == est]
            grid = np.full((len(alphas), len(dists)), np.nan)
            for r in t.to_dict("records"):
                grid[_row(alphas, r, facets), _index(dists, r["problem.distance"])] = r["median_final_dist"]
            with np.errstate(invalid="ignore"):
                shown = np.where(np.isfinite(grid) & (grid > 0), grid, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # every cell empty: seaborn's colour range
                sns.heatmap(shown, ax=ax, cmap=cmap, norm=norm, cbar=False, linewidths=1, linecolor="white",
                            xticklabels=[_g(d) for d in dists],
                            yticklabels=[", ".join([_g(a), *(f"{_short(f)}={_value(v)}" for f, v in zip(facets, lv))])
                                         for a, lv in alphas])
            for r in t.to_dict("records"):
                i, j = _row(alphas, r, facets), _index(dists, r["problem.distance"])
                n, v = r["runs"], r["median_final_dist"]
                k = round(r["diverged_fraction"] * n) if n else 0
                text = "no run" if n == 0 else ("∞" if not np.isfinite(v) else f"{v:.3g}")
                text += f"\n{k}/{n} div." if n else ""
                text += f"\n{r['failed']} failed" if r["failed"] else ""
                dark = bool(n) and np.isfinite(v) and v > 0 and sum(cmap(norm(v))[:3]) < 1.6
                ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7.5,
                        color="white" if dark else "black", fontweight="bold" if k else "normal")
            ax.set_title(est)
            ax.set_xlabel("distance D")
            ax.set_ylabel(", ".join(["step size α", *map(_short, facets)]))
            ax.tick_params(axis="y", rotation=0)
        W, H = fig.get_size_inches()
        cax = _inches(fig, W - 1.2, 0.65, 0.18, panel[1])
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax,
                     label=r"median final $\|\theta_T - x\|$ (units of θ)")
        fig.suptitle(title + "\n(bold: some runs diverged)", y=1 - 0.1 / H, va="top", fontsize=10.5)
    return fig


def fair_comparison(best: pd.DataFrame, colors: dict, title: str, facets: Sequence[str] = ()) -> Figure:
    """Figure 4: per estimator and distance, steps to tolerance at its best step size (IQR bars);
    one panel per value of the ``facets`` (other swept factors), at most three a row."""
    ests = sorted(best["estimator"].unique())
    best = _with_distance(best)
    best = best.assign(D=best["problem.distance"].map(_g))
    dists = [_g(d) for d in _levels(best["problem.distance"])]
    budget = float(best["budget"].max()) if best["budget"].notna().any() else float("nan")
    levels = _facet_levels(best, facets)
    with plt.rc_context(RC):
        fig, axes = _layout(*_wrap(len(levels), 3), (max(5.0, 1.1 * len(dists) * len(ests)), 3.8), left=0.95,
                            right=0.3, bottom=0.65, top=0.45 if not facets else 0.85, wgap=0.75, hgap=0.9)
        for ax, level in zip(_hide_rest(axes, len(levels)), levels):
            _fair_panel(ax, best[_facet_rows(best, facets, level)], ests, dists, budget, colors)
            ax.set_title(_facet_label(facets, level) if facets else title)
            if ax is axes[0, 0]:
                ax.legend(title="estimator (at its best α)", loc="upper left")
            elif ax.get_legend() is not None:
                ax.get_legend().remove()
        if facets:
            fig.suptitle(title, y=1 - 0.1 / fig.get_size_inches()[1], va="top")
    return fig


def _fair_panel(ax, best: pd.DataFrame, ests: list, dists: list, budget: float, colors: dict) -> None:
    sns.barplot(data=best, x="D", y="median_steps_to_tol", hue="estimator", hue_order=ests, order=dists,
                palette=colors, errorbar=None, ax=ax)
    for est, bars in zip(ests, ax.containers):
        rows = {r["D"]: r for r in best[best["estimator"] == est].to_dict("records")}
        labels = []
        for patch, d in zip(bars.patches, dists):
            r = rows.get(d)
            if r is None:
                labels.append("")
                continue
            x = patch.get_x() + patch.get_width() / 2
            if r["reached"]:
                m = r["median_steps_to_tol"]
                ax.errorbar([x], [m], yerr=[[m - r["q25_steps_to_tol"]], [r["q75_steps_to_tol"] - m]],
                            fmt="none", ecolor="0.2", capsize=3)
            else:
                patch.set_hatch("//")
                patch.set_alpha(0.45)
            k = round(r["diverged_fraction"] * r["runs"])
            text = f"α={_g(r['step_size'])}" + ("" if r["reached"] else "\nnot reached")
            labels.append(text + (f"\n{k}/{r['runs']} div." if k else ""))
        ax.bar_label(bars, labels=labels, padding=2, fontsize=7.5)
    if np.isfinite(budget):
        ax.axhline(budget, color="0.4", linestyle=":", linewidth=1)
        ax.text(0.99, budget, f"budget T = {budget:g}", transform=ax.get_yaxis_transform(), va="bottom",
                ha="right", fontsize=7.5, color="0.3")
    if _spans_decades(best["median_steps_to_tol"]):
        _log(ax)
    elif np.isfinite(budget) and budget > 0:  # a budget of 0 steps (steps=0) has no scale to set
        ax.set_ylim(0, budget * 1.3)
    ax.set_xlabel("distance D (units of θ)")
    ax.set_ylabel("steps to tolerance (median, IQR)")


def _plane_limits(picks: Sequence[dict]) -> tuple[tuple[float, float], tuple[float, float], bool]:
    """Axis limits like the original notebook's: the box from θ₀ to x, widened by its size."""
    ends = np.array([p["theta"][0] for p in picks] + [p["optimum"] for p in picks if p["optimum"] is not None])
    if len(ends) == len(picks):  # no optimum known: the paths decide
        ends = np.concatenate([p["theta"] for p in picks])
        ends = ends[np.isfinite(ends).all(axis=1)]
    lo, hi = ends.min(axis=0), ends.max(axis=0)
    pad = max(float(np.max(hi - lo)), 1.0)
    lo, hi = lo - pad, hi + pad
    leaves = any(np.any(~((p["theta"] >= lo) & (p["theta"] <= hi))) for p in picks)
    return (lo[0], hi[0]), (lo[1], hi[1]), leaves


def _thin(n: int, most: int = 2000) -> np.ndarray:
    """At most ``most`` indices of 0…n−1, evenly spread, the first and last among them."""
    return np.unique(np.rint(np.linspace(0, n - 1, min(n, most))).astype(np.int64))


def _rows(picks: Sequence[dict], facets: Sequence[str]) -> list[list[dict]]:
    """The picked runs in rows, one per value of the ``facets`` (all in one row without)."""
    rows: dict[tuple, list[dict]] = {}
    for p in picks:
        rows.setdefault(tuple(_value(p.get(f)) for f in facets), []).append(p)
    return list(rows.values())


def _grid_axes(fig_axes, rows: list[list[dict]]) -> list[tuple]:
    """(axes, pick) in reading order; axes of a short row are hidden, not left empty."""
    out = []
    for i, row in enumerate(rows):
        for j in range(fig_axes.shape[1]):
            if j < len(row):
                out.append((fig_axes[i, j], row[j]))
            else:
                fig_axes[i, j].set_visible(False)
    return out


def _plane(ax, p: dict, xlim, ylim, fontsize: float, facets: Sequence[str] = ()) -> None:
    theta = p["theta"]
    ax.scatter([theta[0, 0]], [theta[0, 1]], marker="o", s=45, color="black", label="θ₀", zorder=3)
    if p["optimum"] is not None:
        # Hollow, so the late steps that gather at x stay visible under it.
        ax.scatter([p["optimum"][0]], [p["optimum"][1]], marker="*", s=220, facecolors="none", edgecolors=WARN,
                   linewidths=1.5, label="x (optimum)", zorder=3)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    stop = len(theta) - 1
    title = f"{p['estimator']}\nα = {_g(p['step_size'])}, D = {_g(p['problem.distance'])}, seed {p['seed']}"
    title += "".join(f", {_short(f)} = {_value(p.get(f))}" for f in facets)
    ax.set_title(title + (f", diverged at t = {stop}" if p["diverged"] == 1 else ""), fontsize=fontsize)
    ax.set_xlabel("θ₁")
    ax.set_ylabel("θ₂")


def trajectories(picks: Sequence[dict], title: str, facets: Sequence[str] = ()) -> Figure:
    """Figure 6: θ_t in the plane, one panel per estimator (a row per value of the ``facets``,
    other swept factors), coloured by step (the notebook's scatter)."""
    xlim, ylim, leaves = _plane_limits(picks)
    cmap = sns.color_palette("viridis", as_cmap=True)
    stop_max = max(len(p["theta"]) - 1 for p in picks)
    with plt.rc_context(RC):
        rows = _rows(picks, facets)
        fig, axes = _layout(len(rows), max(map(len, rows)), (3.8, 3.8), left=0.75, right=1.2, bottom=0.6, top=0.95,
                            wgap=0.8, hgap=0.95)
        # Most of the motion is early: a scale linear up to t = 10 and logarithmic beyond shows it.
        norm = SymLogNorm(linthresh=10, vmin=0, vmax=max(stop_max, 10), base=10)
        for ax, p in _grid_axes(axes, rows):
            idx = _thin(len(p["theta"]))
            ax.scatter(p["theta"][idx, 0], p["theta"][idx, 1], c=idx, cmap=cmap, norm=norm, s=7, linewidths=0)
            _plane(ax, p, xlim, ylim, fontsize=9, facets=facets)
        axes[0, 0].legend(loc="upper left")
        W, H = fig.get_size_inches()
        cax = _inches(fig, W - 0.95, 0.6, 0.16, 3.8)
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax, label="step t (log scale beyond 10)")
        fig.suptitle(title + (" (some points leave the view)" if leaves else ""), y=1 - 0.1 / H, va="top")
    return fig


def trajectory_gif(picks: Sequence[dict], colors: dict, path: Path, *, frames: int, title: str = "", dpi: int = 80,
                   window: int = 50, facets: Sequence[str] = ()) -> None:
    """The trajectories as an animated GIF of ``frames`` frames that stops on the last one.

    Each frame shows the path so far, faint, and its last ``window`` points, like the
    original notebook's moving scatter. The GIF has no loop extension, so it plays once.
    """
    frames = max(2, int(frames))
    xlim, ylim, _ = _plane_limits(picks)
    stop_max = max(len(p["theta"]) - 1 for p in picks)
    times = np.rint(np.linspace(0, stop_max, frames)).astype(np.int64)
    with plt.rc_context({**RC, "figure.dpi": dpi}):
        rows = _rows(picks, facets)
        fig, axes = _layout(len(rows), max(map(len, rows)), (3.0, 3.0), left=0.65, right=0.2, bottom=0.55, top=0.75,
                            wgap=0.75, hgap=0.9)
        dynamic = []
        for ax, p in _grid_axes(axes, rows):
            _plane(ax, p, xlim, ylim, fontsize=7.5, facets=facets)
            # Animated artists stay out of the static background and are drawn per frame.
            trail = ax.scatter([], [], s=3, color="0.6", alpha=0.5, linewidths=0, animated=True)
            head = ax.scatter([], [], s=10, color=colors[p["estimator"]], linewidths=0, animated=True)
            dynamic.append((ax, trail, head, p["theta"]))
        fig.suptitle(title, y=1 - 0.08 / fig.get_size_inches()[1], va="top", fontsize=10)
        clock = fig.text(0.99, 0.01, "", ha="right", va="bottom", fontsize=8, animated=True)
        fig.canvas.draw()
        background = fig.canvas.copy_from_bbox(fig.bbox)
        size = fig.canvas.get_width_height()
        images = []
        for t in times:
            fig.canvas.restore_region(background)
            for ax, trail, head, theta in dynamic:
                upto = min(int(t), len(theta) - 1)
                trail.set_offsets(theta[_thin(upto + 1, 1500)])
                head.set_offsets(theta[max(0, upto - window + 1) : upto + 1])
                ax.draw_artist(trail)
                ax.draw_artist(head)
            clock.set_text(f"t = {int(t)} / {stop_max}")
            fig.draw_artist(clock)
            images.append(Image.frombuffer("RGBA", size, bytes(fig.canvas.buffer_rgba())).convert("RGB"))
        plt.close(fig)
    # One palette for all frames, from the last (it holds every colour drawn): fast and stable.
    shared = images[-1].quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    indexed = [im.quantize(palette=shared, dither=Image.Dither.NONE) for im in images]
    buf = io.BytesIO()
    durations = [80] * (len(indexed) - 1) + [2500]  # hold the last frame, then stop
    indexed[0].save(buf, format="GIF", save_all=True, append_images=indexed[1:], duration=durations)
    path.write_bytes(buf.getvalue())
