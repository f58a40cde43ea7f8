"""Each `experiment=` preset, shrunk, runs end to end into a temporary store and logs what it is for."""

from __future__ import annotations

import math

import pytest

from experiments.report.build import plan, read_report_sweep
from tests.experiments.test_cli import children, parents

# The report's sections each preset gets: only those its runs have data for (a single distance
# draws nothing against the distance; a study at θ₀ draws nothing against the step; a problem
# without an optimum draws no trajectory towards it).
STEPPED = ["mse_split", "convergence", "outcomes", "fair_comparison"]
TRAJECTORY = ["variance_along_trajectory", "trajectories"]
TRAINING = ["training_vs_step", "training_vs_wall_time", "training_vs_evaluations"]


def study(param: str) -> list[str]:
    return [f"variance_vs_{param}", f"work_normalized_variance_vs_{param}", f"bias_vs_{param}"]


def sections(store) -> list[str]:
    return plan(read_report_sweep(store.uri, "mcgrad-bench"))


def test_seed_notebook_runs_both_estimators_at_both_step_sizes(store):
    proc = store.run("-m", "experiment=seed_notebook", "steps=100", "seed=0", "variance_samples=20", "log_points=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sections(store) == [*STEPPED, *TRAJECTORY]
    runs = store.runs()
    kids = children(runs)
    assert parents(runs)["status"].item() == "FINISHED" and (kids["status"] == "FINISHED").all()
    grid = set(zip(kids["params.estimator.name"], kids["params.step_size"].astype(float)))
    assert grid == {(e, a) for e in ("score_function", "reparameterization") for a in (1e-4, 1e-2)}
    assert kids["params.problem.distance"].astype(float).tolist() == pytest.approx([100 * math.sqrt(2)] * 4)
    assert (kids["params.problem.dim"] == "2").all() and (kids["params.samples"] == "1").all()
    assert not any(c.startswith("params._sweep_") for c in kids.columns)


BLOCKS = ["grad_variance", "grad_variance/mean", "grad_variance/scale"]


def test_variance_vs_k_logs_measured_and_exact_variances_per_block_at_step_zero(store):
    ks = ["0.5", "2.0"]
    # problem.k replaces the preset's per-function k points; one point (_point_) keeps each k once.
    proc = store.run("-m", "experiment=variance_vs_k", "_point_=k1", "problem.k=" + ",".join(ks),
                     "variance_samples=20000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sections(store) == study("k")
    kids = children(store.runs())
    estimators = {"score_function", "score_function_oracle_baseline", "score_function_optimal_baseline",
                  "reparameterization", "measure_valued"}
    assert set(zip(kids["params.estimator.name"], kids["params.problem.f"], kids["params.problem.k"])) == {
        (e, f, k) for e in estimators for f in ("square", "exp", "cos") for k in ks}
    assert (kids["params.steps"] == "0").all() and (kids["params.learn_scale"] == "True").all()
    client = store.client()
    for _, run in kids.iterrows():
        at0 = {m.key: m.value for key in ("grad_variance", "grad_variance_se") for block in ("", "/mean", "/scale")
               for m in client.get_metric_history(run.run_id, key + block) if m.step == 0}
        assert set(BLOCKS) <= set(at0)
        assert at0["grad_variance"] == pytest.approx(at0["grad_variance/mean"] + at0["grad_variance/scale"])
        if run["params.estimator.name"] == "score_function_optimal_baseline":
            assert "metrics.grad_variance_exact" not in run or math.isnan(run["metrics.grad_variance_exact"])
            continue
        for name in BLOCKS:
            history = client.get_metric_history(run.run_id, name.replace("grad_variance", "grad_variance_exact"))
            exact = next(m.value for m in history if m.step == 0)
            se = at0[name.replace("grad_variance", "grad_variance_se")]
            assert abs(at0[name] - exact) < 5 * se + 1e-12, (run["params.estimator.name"], run["params.problem.f"],
                                                              run["params.problem.k"], name, at0[name], exact, se)


def test_logreg_compares_estimators_and_logs_elbo_and_test_accuracy(store):
    proc = store.run("-m", "experiment=logreg", "steps=20", "seed=0", "samples=2", "variance_samples=5",
                     "log_points=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sections(store) == ["mse_split", "loss", "variance_along_trajectory", "problem_curves"]
    kids = children(store.runs())
    assert set(kids["params.estimator.name"]) == {"score_function", "score_function_delta", "reparameterization",
                                                  "measure_valued"}
    assert (kids["status"] == "FINISHED").all() and (kids["params.optimizer.name"] == "adam").all()
    for name in ["elbo", "test_accuracy", "loss", "grad_variance", "grad_variance/mean", "grad_variance/scale"]:
        assert kids[f"metrics.{name}"].notna().all(), name
    assert ((kids["metrics.test_accuracy"] > 0.5) & (kids["metrics.test_accuracy"] <= 1.0)).all()
    assert (kids["metrics.elbo"] == -kids["metrics.loss"]).all()
    # No known optimum: no distance curve and no distance summaries are logged (they were NaN,
    # and steps_to_tol T + 1, before problems declared their capabilities).
    for name in ("dist_to_opt", "final_dist", "best_dist", "steps_to_tol", "converged"):
        assert f"metrics.{name}" not in kids or kids[f"metrics.{name}"].isna().all(), name


DISCRETE = {"score_function", "score_function_leave_one_out", "arm", "disarm", "rebar", "measure_valued",
            "gumbel_softmax", "straight_through"}


def test_discrete_toy_runs_every_bernoulli_estimator_and_logs_bias_beside_variance(store):
    proc = store.run("-m", "experiment=discrete_toy", "steps=20", "seed=0", "variance_samples=200", "log_points=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sections(store) == ["mse_split", "loss", "variance_along_trajectory", "bias_along_trajectory"]
    kids = children(store.runs())
    assert set(zip(kids["params.estimator.name"], kids["params.problem.target"])) == {
        (e, t) for e in DISCRETE for t in ("0.499", "0.45")}
    assert (kids["status"] == "FINISHED").all() and (kids["params.optimizer.name"] == "adam").all()
    for name in ("loss", "grad_variance", "grad_bias_sq", "grad_bias_sq_se", "grad_mse", "grad_cosine"):
        assert kids[f"metrics.{name}"].notna().all(), name
    biased = kids["params.estimator.name"].isin(["gumbel_softmax", "straight_through"])
    # Unbiased estimators log an exact bias of 0; the relaxations theirs, by quadrature, > 0.
    assert (kids.loc[~biased, "metrics.grad_bias_sq_exact"] == 0).all()
    assert (kids.loc[biased, "metrics.grad_bias_sq_exact"] > 0).all()
    assert "metrics.dist_to_opt" not in kids or kids["metrics.dist_to_opt"].isna().all()


def test_discrete_variance_measures_every_estimator_at_theta0_against_its_exact_values(store):
    proc = store.run("-m", "experiment=discrete_variance", "problem.logit0=-2.0,1.0", "variance_samples=20000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sections(store) == study("logit0")
    kids = children(store.runs())
    assert set(zip(kids["params.estimator.name"], kids["params.problem.logit0"])) == {
        (e, p) for e in DISCRETE for p in ("-2.0", "1.0")}
    assert (kids["params.steps"] == "0").all()
    exact = kids["metrics.grad_variance_exact"].notna()
    # Every unbiased estimator but REBAR has its exact variance on this problem.
    assert set(kids.loc[exact, "params.estimator.name"]) == DISCRETE - {"rebar", "gumbel_softmax", "straight_through"}
    for _, run in kids[exact].iterrows():
        assert abs(run["metrics.grad_variance"] - run["metrics.grad_variance_exact"]) < 5 * run[
            "metrics.grad_variance_se"] + 1e-15, run["params.estimator.name"]
    for _, run in kids.iterrows():
        assert abs(run["metrics.grad_bias_sq"] - run["metrics.grad_bias_sq_exact"]) < 5 * run[
            "metrics.grad_bias_sq_se"] + 1e-15, run["params.estimator.name"]


GAMMA_BLOCKS = ["grad_variance", "grad_variance/concentration", "grad_variance/rate"]


def test_implicit_vs_k_logs_both_blocks_against_their_exact_values(store):
    """The score function and the implicit pathwise estimator on Gamma(1, 1) at θ₀: per block,
    measured within 5 standard errors of the exact value (k where the fourth moments are modest:
    the standard errors then mean what they say); the pilot-estimated optimal baseline has none."""
    ks = ["0.5", "1.0"]
    proc = store.run("-m", "experiment=implicit_vs_k", "problem.k=" + ",".join(ks), "variance_samples=20000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sections(store) == study("k")
    kids = children(store.runs())
    names = {"score_function", "score_function_optimal_baseline", "reparameterization"}
    assert set(zip(kids["params.estimator.name"], kids["params.problem.f"], kids["params.problem.k"])) == {
        (e, f, k) for e in names for f in ("power", "exp") for k in ks}
    assert (kids["params.steps"] == "0").all() and (kids["tags.family"] == "gamma").all()
    client = store.client()
    for _, run in kids.iterrows():
        at0 = {m.key: m.value for key in ("grad_variance", "grad_variance_se", "grad_variance_exact")
               for block in ("", "/concentration", "/rate") for m in client.get_metric_history(run.run_id, key + block)
               if m.step == 0}
        assert set(GAMMA_BLOCKS) <= set(at0)
        expected_cost = 101 if run["params.estimator.name"] == "score_function_optimal_baseline" else 1
        assert run["metrics.evals_per_estimate"] == expected_cost
        if run["params.estimator.name"] == "score_function_optimal_baseline":
            assert "grad_variance_exact" not in at0
            continue
        for name in GAMMA_BLOCKS:
            exact, se = at0[name.replace("grad_variance", "grad_variance_exact")], at0[name.replace("grad_variance",
                                                                                                    "grad_variance_se")]
            assert abs(at0[name] - exact) < 5 * se + 1e-12, (run["params.estimator.name"], run["params.problem.f"],
                                                              run["params.problem.k"], name, at0[name], exact, se)


def test_binary_vae_trains_every_bernoulli_estimator_and_the_pathwise_one_on_gaussian_latents(store):
    proc = store.run("-m", "experiment=binary_vae", "steps=4", "seed=0", "variance_samples=3", "log_points=2",
                     "problem.test_samples=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sections(store) == ["loss", "variance_along_trajectory", *TRAINING]
    kids = children(store.runs())
    assert set(zip(kids["params.estimator.name"], kids["params.problem.latent"])) == {
        *((e, "bernoulli") for e in DISCRETE), ("reparameterization", "gaussian")}
    assert (kids["status"] == "FINISHED").all() and (kids["params.optimizer.name"] == "adam").all()
    for name in ("elbo", "test_elbo", "loss", "grad_variance", "work_normalized_variance", "evals_per_estimate",
                 "wall_time_per_estimate_s"):
        assert kids[f"metrics.{name}"].notna().all(), name
    assert (kids["metrics.elbo"] == -kids["metrics.loss"]).all()
    assert (kids["metrics.test_elbo"] < 0).all()
