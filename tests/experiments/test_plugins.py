"""One's own estimator and problem, in a package outside the repository, seen through
``hydra.searchpath`` and swept beside the built-in ones, with their options checked."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from experiments.config import ConfigError
from experiments.overrides import check_group_choices, check_keys

DAMPING = 0.5
SHIFT = 1.0

PACKAGE = {
    "__init__.py": '''
        """A researcher's own estimator and problem."""
        from estimators.core import sample_shape
        from estimators.sampling import independent
        from problems.quadratic import Quadratic


        def damped_pathwise(f, family, params, rng, num_samples, *, sampling=independent, damping=1.0):
            """The pathwise estimator times ``damping``: biased unless damping = 1."""
            eps = family.noise(sampling, rng, sample_shape(num_samples), params)
            z = family.sample(params, eps)
            return damping * family.pathwise(params, z, eps, f.grad(z))


        def shifted(dim=2, distance=1.0, sigma=1.0, shift=0.0):
            """The founding quadratic with its optimum ``shift`` further away."""
            return Quadratic(dim=dim, distance=distance + shift, sigma=sigma)
        ''',
    "conf/__init__.py": "",
    "conf/estimator/damped.yaml": f"""
        name: damped
        _target_: mylab.damped_pathwise
        _partial_: true
        damping: {DAMPING}
        """,
    # A typo in an option's name: the function has no such argument.
    "conf/estimator/damped_typo.yaml": """
        name: damped_typo
        _target_: mylab.damped_pathwise
        _partial_: true
        dampng: 0.5
        """,
    "conf/problem/shifted.yaml": f"""
        name: shifted
        _target_: mylab.shifted
        dim: 2
        distance: 10.0
        sigma: 1.0
        shift: {SHIFT}
        """,
    "conf/problem/shifted_typo.yaml": """
        name: shifted_typo
        _target_: mylab.shifted
        dim: 2
        distance: 10.0
        shfit: 1.0
        """,
}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """``mylab``, a package of one's own in a temporary directory (returned: the directory to
    put on PYTHONPATH)."""
    root = tmp_path_factory.mktemp("site")
    for name, text in PACKAGE.items():
        path = root / "mylab" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


@pytest.fixture(scope="module")
def sweep(package, tmp_path_factory):
    """Own and built-in estimators on one's own problem, two seeds: four jobs."""
    from tests.conftest import Store

    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", str(package))
    try:
        store = Store(tmp_path_factory.mktemp("plugins"))
        proc = store.run("-m", f"hydra.searchpath=[file://{package / 'mylab' / 'conf'}]", "hydra.sweeper.params=null",
                         "estimator=damped,reparameterization", "problem=shifted", "step_size=0.01", "seed=0,1",
                         "steps=20", "variance_samples=200", "log_points=3")
    finally:
        mp.undo()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return store, store.runs()


def test_own_estimator_runs_beside_a_built_in_one(sweep):
    store, runs = sweep
    kids = runs[runs["tags.run_kind"] == "job"]
    assert len(kids) == 4 and (kids["status"] == "FINISHED").all()
    assert sorted(kids["tags.estimator"]) == ["damped", "damped", "reparameterization", "reparameterization"]
    assert set(kids["tags.problem"]) == {"shifted"}
    assert (kids["params.estimator.damping"].dropna() == str(DAMPING)).all()
    parent = runs[runs["tags.run_kind"] == "sweep"]
    assert parent["status"].item() == "FINISHED" and (kids["tags.mlflow.parentRunId"] == parent["run_id"].item()).all()


def test_own_problem_and_estimator_compute_what_they_say(sweep):
    """θ₀ = 0 and the optimum at distance D + shift (the problem); at θ₀ both estimators see
    the same base noise, so the damped one's estimates are DAMPING times the pathwise ones and
    its measured variance DAMPING² times theirs (up to rounding)."""
    store, runs = sweep
    client = store.client()
    kids = runs[runs["tags.run_kind"] == "job"]
    at_start = {}
    for _, kid in kids.iterrows():
        dist = {m.step: m.value for m in client.get_metric_history(kid["run_id"], "dist_to_opt")}
        assert dist[0] == pytest.approx(10.0 + SHIFT, rel=1e-12)
        var = {m.step: m.value for m in client.get_metric_history(kid["run_id"], "grad_variance")}
        at_start[kid["tags.estimator"], kid["params.seed"]] = var[0]
    for seed in ("0", "1"):
        assert at_start["damped", seed] == pytest.approx(DAMPING**2 * at_start["reparameterization", seed], rel=1e-12)


def test_own_options_are_listed_and_checked(package, monkeypatch):
    monkeypatch.syspath_prepend(str(package))
    for where in (f"file://{package / 'mylab' / 'conf'}", "pkg://mylab.conf"):
        search = f"hydra.searchpath=[{where}]"
        check_group_choices([search, "estimator=damped,score_function", "problem=shifted"])
        check_keys([search, "estimator=damped", "estimator.damping=0.25", "problem=shifted", "problem.shift=2"])
        with pytest.raises(ConfigError, match=r"^invalid estimator=dampd: allowed: one of .*\bdamped\b"):
            check_group_choices([search, "estimator=dampd"])
        with pytest.raises(ConfigError, match=r"^invalid problem.shfit: .*nearest: problem.shift"):
            check_keys([search, "problem=shifted", "problem.shfit=2"])
    with pytest.raises(ConfigError, match=r"^invalid estimator=damped: allowed: one of"):
        check_group_choices(["estimator=damped"])  # not visible without the search path
    with pytest.raises(ConfigError, match=r"^invalid hydra.searchpath entry pkg://nolab.conf: no importable package"):
        check_group_choices(["hydra.searchpath=[pkg://nolab.conf]", "estimator=damped"])


@pytest.mark.parametrize("choice, line", [
    ("estimator=damped_typo",
     "invalid estimator.dampng: mylab.damped_pathwise takes no option dampng; allowed: damping, sampling"),
    ("problem=shifted_typo",
     "invalid problem.shfit: mylab.shifted takes no option shfit; allowed: dim, distance, shift, sigma"),
])
def test_an_option_the_function_does_not_take_is_refused_in_one_line(package, compose_config, monkeypatch, choice,
                                                                      line):
    from experiments.config import validate

    monkeypatch.syspath_prepend(str(package))
    cfg = compose_config("hydra.searchpath=[pkg://mylab.conf]", choice)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value) == line


def test_the_cli_refuses_a_bad_option_of_ones_own_and_writes_nothing(package, store, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(package))
    proc = store.run("-m", "hydra.searchpath=[pkg://mylab.conf]", "hydra.sweeper.params=null",
                     "estimator=reparameterization,damped_typo", "steps=5")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines == ["mcgrad-bench: error: invalid estimator.dampng: mylab.damped_pathwise "
                                              "takes no option dampng; allowed: damping, sampling"], proc.stderr
    assert not store.db.exists() and not (store.root / "mlruns").exists()
