"""Input at the limits: one line on stderr, exit status 2, nothing written to the store."""

from __future__ import annotations

import pytest

from experiments.config import ConfigError, available_memory, memory_needed, validate

# 10¹³ steps of a 2-d trajectory: 1.6·10¹⁴ bytes (160 TB) however the machine is built.
HUGE_STEPS = "steps=10000000000000"


def one_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def nothing_written(store) -> bool:
    return not store.db.exists() and not (store.root / "mlruns").exists()


@pytest.mark.parametrize("args, start", [
    ((HUGE_STEPS,), "mcgrad-bench: error: invalid steps=10000000000000, problem.dim=2: the run's arrays need at least"),
    # One job of a sweep that cannot fit refuses the whole sweep before its parent run exists.
    (("-m", "hydra.sweeper.params=null", "variance_samples=100,1000000000", "samples=10", "problem.dim=100"),
     "mcgrad-bench: error: invalid variance_samples=1000000000, samples=10, problem.dim=100: the run's arrays "
     "need at least"),
])
def test_arrays_that_cannot_fit_are_refused_with_the_estimate(store, args, start):
    line = one_line(store.run(*args))
    assert line.startswith(start) and "available (MemAvailable); allowed:" in line
    assert nothing_written(store)


def test_the_estimate_is_a_lower_bound_of_what_the_arrays_hold(compose_config):
    """The trajectory alone is (T + 1)·d float64 values, a probe's per-sample estimates V·N·d:
    the estimate is at least either (the arrays' sizes, counted here from their shapes)."""
    cfg = compose_config("steps=999", "variance_samples=7", "samples=3", "problem.dim=5")
    needed, keys = memory_needed(cfg)
    assert needed >= 8 * 1000 * 5 and needed >= 8 * 7 * 3 * 5
    assert keys == ["steps", "problem.dim"]


def test_a_config_near_the_memory_available_is_refused_in_process(compose_config, monkeypatch):
    import experiments.config as config

    cfg = compose_config("steps=999", "variance_samples=7", "samples=3", "problem.dim=5")
    needed, _ = memory_needed(cfg)
    monkeypatch.setattr(config, "available_memory", lambda: needed)
    validate(cfg)
    monkeypatch.setattr(config, "available_memory", lambda: needed - 1)
    with pytest.raises(ConfigError, match=r"^invalid steps=999, problem.dim=5: the run's arrays need at least"):
        validate(cfg)
    assert available_memory() is None or available_memory() > 0


def test_launcher_options_the_launcher_refuses_leave_no_parent_run(store):
    line = one_line(store.run("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "hydra.sweeper.params=null",
                              "steps=5"))
    assert line.startswith("mcgrad-bench: error: invalid hydra.launcher.n_jobs=0: ") and "allowed: an integer" in line
    assert nothing_written(store)


def test_launcher_check_names_the_option():
    """Each option joblib refuses, named with its value, without starting any worker."""
    from hydra_plugins.mcgrad_bench.tracked_sweeper import check_launcher, launcher_refusal

    class JoblibLauncher:  # the options as Hydra's joblib launcher holds them
        def __init__(self, **options):
            self.joblib = {"n_jobs": -1, "backend": None, "prefer": "processes", "pre_dispatch": "2*n_jobs",
                           "batch_size": "auto", **options}

    check_launcher(JoblibLauncher())
    for key, value in [("n_jobs", 0), ("batch_size", 0), ("pre_dispatch", "x"), ("prefer", "x")]:
        launcher = JoblibLauncher(**{key: value})
        with pytest.raises((ValueError, TypeError)) as err:
            check_launcher(launcher)
        assert launcher_refusal(launcher, err.value).startswith(f"invalid hydra.launcher.{key}={value}: ")


@pytest.mark.parametrize("args", [["tracking.urii=x"], ["stepsize=1"]])
def test_a_key_the_config_does_not_have_exits_2_from_the_ui_too(args, capsys):
    from experiments.ui import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mcgrad-bench: error: invalid {args[0].split('=')[0]}")
