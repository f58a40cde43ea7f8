"""Every config composes and instantiates; every invalid value is refused by name."""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from experiments.config import ConfigError, build, config_hash, params, redact_uri, validate
from tests.conftest import CONF_DIR

TOP_CONFIGS = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))
GROUP_OPTIONS = sorted(
    (group.name, option.stem)
    for group in CONF_DIR.iterdir()
    if group.is_dir() and group.name != "hydra"
    for option in group.glob("*.yaml")
)


def targets(node, path=""):
    """(dotted path, node) of every config node with a ``_target_``."""
    if OmegaConf.is_dict(node):
        if "_target_" in node:
            yield path, node
        for key in node:
            yield from targets(node[key], f"{path}.{key}" if path else str(key))


@pytest.mark.parametrize("name", TOP_CONFIGS)
def test_top_config_composes_resolves_and_instantiates(compose_config, name):
    cfg = compose_config(config_name=name)
    OmegaConf.to_container(cfg, resolve=True)
    for _, node in targets(cfg):
        assert build(node) is not None


PROBLEMS = sorted(p.stem for p in (CONF_DIR / "problem").glob("*.yaml"))


@pytest.mark.parametrize("group, option", GROUP_OPTIONS, ids=lambda x: str(x))
def test_every_group_option_composes_validates_and_instantiates(compose_config, group, option):
    """With the default problem, or, for an estimator of some families only (arm: Bernoulli) or
    one that needs two samples (leave-one-out), with the first problem it applies to."""
    extras = [()]
    if group == "estimator":
        extras += [(f"problem={p}", f"samples={n}") for n in (1, 2) for p in PROBLEMS]
    refusals = []
    for extra in extras:
        cfg = compose_config(f"{group}={option}", *extra)
        try:
            validate(cfg)
        except ConfigError as err:
            refusals.append(str(err))
            continue
        for _, node in targets(cfg):
            assert build(node) is not None
        return
    pytest.fail(refusals[0])


def test_default_is_the_founding_setting(compose_config):
    cfg = compose_config()
    problem = build(cfg.problem)
    assert problem.optimum.tolist() == pytest.approx([100.0, 100.0])
    assert cfg.steps == 5000 and cfg.step_size == 1e-4 and cfg.estimator.name == "score_function"


def test_default_store_is_at_the_project_root(compose_config, monkeypatch):
    from experiments.config import PROJECT_ROOT

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert compose_config().tracking.uri == f"sqlite:///{PROJECT_ROOT}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert compose_config().tracking.uri == "http://127.0.0.1:5999"


# The contract's "valid" column, one bad value (or more) per key: override -> key named in the error.
BAD_VALUES = [
    ("step_size=0", "step_size"),
    ("step_size=-1e-3", "step_size"),
    ("step_size=inf", "step_size"),
    ("step_size=nan", "step_size"),
    ("step_size=abc", "step_size"),
    ("steps=-1", "steps"),
    ("steps=2.5", "steps"),
    ("samples=0", "samples"),
    ("seed=-1", "seed"),
    ("seed=1.5", "seed"),
    ("variance_samples=1", "variance_samples"),
    ("log_points=1", "log_points"),
    ("tolerance=0", "tolerance"),
    ("tolerance=inf", "tolerance"),
    ("problem.distance=-1", "problem.distance"),
    ("problem.distance=inf", "problem.distance"),
    ("problem.dim=0", "problem.dim"),
    ("problem.dim=1.5", "problem.dim"),
    ("problem.sigma=0", "problem.sigma"),
    ("problem.sigma=-1", "problem.sigma"),
    ("tracking.uri=''", "tracking.uri"),
    ("tracking.experiment=''", "tracking.experiment"),
    ("divergence_factor=1", "divergence_factor"),
    ("learn_scale=maybe", "learn_scale"),
    ("estimator=measure_valued estimator.coupling=2", "estimator.coupling"),
    ("estimator/baseline=moving_average estimator.baseline.decay=1", "estimator.baseline.decay"),
    ("estimator/baseline=optimal estimator.baseline.pilot=0", "estimator.baseline.pilot"),
    ("problem=gaussian_expectation problem.f=sin", "problem.f"),
    # k may be any finite number for (x − k)² and cos(kx) (the reference study's panel has k < 0); not for exp.
    ("problem=gaussian_expectation problem.f=exp problem.k=-1", "problem.k"),
    ("problem=gaussian_expectation problem.mu0=inf", "problem.mu0"),
    ("problem=gaussian_expectation problem.sigma0=0", "problem.sigma0"),
    ("optimizer=adam optimizer.beta1=1", "optimizer.beta1"),
    ("optimizer=adam optimizer.beta2=-0.1", "optimizer.beta2"),
    ("optimizer=adam optimizer.eps=0", "optimizer.eps"),
    ("problem=logistic_regression problem.prior_scale=0", "problem.prior_scale"),
    ("problem=logistic_regression problem.test_fraction=1", "problem.test_fraction"),
    ("problem=logistic_regression problem.split_seed=-1", "problem.split_seed"),
    ("problem=bernoulli_toy problem.target=nan", "problem.target"),
    ("problem=bernoulli_toy estimator=gumbel_softmax estimator.temperature=0", "estimator.temperature"),
    ("problem=bernoulli_toy estimator=rebar estimator.eta=inf", "estimator.eta"),
    ("problem=categorical_toy estimator=rebar", "estimator=rebar"),
    ("problem=quadratic estimator=arm", "estimator=arm"),
    ("problem=bernoulli_toy problem.logit0=inf", "problem.logit0"),
    ("problem=bernoulli_toy problem.logit0=abc", "problem.logit0"),
    ("problem=gamma_expectation problem.f=sin", "problem.f"),
    ("problem=gamma_expectation problem.concentration0=0", "problem.concentration0"),
    ("problem=gamma_expectation problem.k=-2", "problem.k"),  # E z^k is infinite for α₀ + k ≤ 0
    ("problem=gamma_expectation estimator=measure_valued", "estimator=measure_valued"),
    ("problem=dirichlet_expectation problem.dim=1", "problem.dim"),
    ("problem=quadratic estimator=score_function_oracle_baseline", "estimator=score_function_oracle_baseline"),
    # Constraints between keys.
    ("estimator/baseline=leave_one_out samples=1", "estimator/baseline=leave_one_out"),
    ("estimator/baseline=leave_one_out samples=4 sampling=antithetic", "estimator/baseline=leave_one_out"),
    # What applies to the problem's distribution family.
    ("problem=bernoulli_toy estimator=reparameterization", "estimator=reparameterization"),
    ("problem=bernoulli_toy estimator=score_function_delta", "estimator=score_function_delta"),
    ("problem=bernoulli_toy estimator/control_variate=delta", "estimator=score_function"),
    ("problem=bernoulli_toy learn_scale=true", "learn_scale"),
]


@pytest.mark.parametrize("override, key", BAD_VALUES)
def test_invalid_value_is_refused_by_key(compose_config, override, key):
    cfg = compose_config(*override.split())
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    message = str(err.value)
    assert f"invalid {key}" in message and "allowed:" in message and "\n" not in message


def test_valid_edge_values_pass(compose_config):
    validate(compose_config("steps=0", "problem.distance=0", "variance_samples=2", "log_points=2", "seed=0"))


def test_params_are_flat_and_hash_ignores_where_runs_go(compose_config):
    cfg = compose_config("step_size=0.5")
    p = params(cfg)
    assert p["step_size"] == "0.5" and p["problem.distance"] == str(100 * math.sqrt(2))
    assert "tracking.uri" not in p and not any(k.endswith("_target_") for k in p)
    elsewhere = compose_config("step_size=0.5", "tracking.uri=sqlite:////tmp/elsewhere.db")
    assert config_hash(cfg) == config_hash(elsewhere)
    assert config_hash(cfg) != config_hash(compose_config("step_size=0.25"))


def test_family_refusals_name_the_estimators_that_apply(compose_config):
    with pytest.raises(ConfigError) as err:
        validate(compose_config("problem=bernoulli_toy", "estimator=reparameterization"))
    message = str(err.value)
    assert "bernoulli family" in message
    allowed = message.split("allowed: estimator=")[1].split(",")
    assert "score_function" in allowed and "measure_valued" in allowed and "reparameterization" not in allowed
    assert "score_function_delta" not in allowed


def test_problem_k_may_be_negative_for_square_and_cos(compose_config):
    for f in ("square", "cos"):
        validate(compose_config("problem=gaussian_expectation", f"problem.f={f}", "problem.k=-2.5"))


def test_hash_does_not_depend_on_where_the_code_lives(compose_config):
    """Moving a module changes ``_target_``, not what a run computes: the hash stays."""
    from omegaconf import open_dict

    cfg = compose_config("estimator/baseline=optimal")
    moved = compose_config("estimator/baseline=optimal")
    with open_dict(moved):
        moved.problem._target_ = "somewhere.else.Quadratic"
        moved.estimator._target_ = "somewhere.else.score_function"
        moved.estimator.baseline._target_ = "somewhere.else.optimal"
        moved.estimator._partial_ = False
    assert config_hash(cfg) == config_hash(moved)
    assert config_hash(cfg) != config_hash(compose_config("estimator/baseline=moving_average"))


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("sqlite:////tmp/m.db", "sqlite:////tmp/m.db"),
        ("postgresql://user:secret@db:5432/mlflow", "postgresql://user:***@db:5432/mlflow"),
        ("https://token@host/path", "https://***@host/path"),
        ("https://host/api?token=abc123&region=eu", "https://host/api?token=***&region=eu"),
        ("postgresql://db/mlflow?password=pw", "postgresql://db/mlflow?password=***"),
    ],
)
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected


NESTED_OPTIONS = sorted(
    (str(path.parent.relative_to(CONF_DIR)), path.stem)
    for path in CONF_DIR.glob("*/*/*.yaml")
)


@pytest.mark.parametrize("group, option", GROUP_OPTIONS + NESTED_OPTIONS, ids=lambda x: str(x))
def test_every_built_in_option_takes_only_arguments_its_target_accepts(compose_config, group, option):
    """The signature check (``check_options``) and the memory bound pass every option shipped."""
    from experiments.config import check_memory, check_options

    base = ("estimator=score_function",) if group.startswith("estimator/") else ()
    cfg = compose_config(*base, f"{group}={option}")
    check_options(cfg)
    check_memory(cfg)
