"""``python -m experiments.ui [tracking.uri=…] [tracking.experiment=…] [--port N]``: where to look in the MLflow UI.

Prints the direct links to the latest sweep's runs table and to its parent run (whose
Artifacts tab holds ``sweep_summary.json``, the per-cell summary as a table). MLflow 3's UI
opens an experiment on a GenAI overview page, not on its runs: these links skip it.
Reads the store only: a SQLite store that does not exist yet is not created.
"""

from __future__ import annotations

import argparse
import os
import sys

from experiments.config import ConfigError, hide_credentials, redact_uri, refuse

DEFAULT_PORT = 5000


def links(uri: str, experiment: str, port: int) -> list[str]:
    """The lines to print: the runs table and the parent run of the latest sweep in ``experiment``."""
    from experiments import tracking

    path = tracking.sqlite_path(uri)
    if path is not None and not path.exists():
        return [f"No runs yet in {redact_uri(uri)}: `make run` (or python -m experiments.run -m) makes a sweep."]
    tracking.preflight(uri)  # a server that does not answer: one line within seconds, not minutes of retries
    c = tracking.client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return [f"No experiment {experiment!r} in {redact_uri(uri)} yet."]
    base = f"http://127.0.0.1:{port}/#/experiments/{exp.experiment_id}"
    found = c.search_runs([exp.experiment_id], "tags.run_kind = 'sweep'", max_results=1,
                          order_by=["attributes.start_time DESC"])
    if not found:
        return [f"Runs of experiment {experiment!r}: {base}/runs"]
    parent = found[0]
    sweep_id = parent.data.tags.get("sweep_id", "?")
    return [
        f"Runs of experiment {experiment!r} (latest sweep {sweep_id}): {base}/runs",
        f"Its parent run, summary table under Artifacts > sweep_summary.json: {base}/runs/{parent.info.run_id}",
    ]


def _config(overrides: list[str]):
    """The tracking node of the suite's config, with these overrides (``tracking.*`` only)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from experiments.config import PROJECT_ROOT, validate
    from experiments.overrides import check_keys

    for item in overrides:
        if not item.lstrip("+").startswith("tracking."):
            raise ConfigError(f"invalid {item.split('=', 1)[0]}: not a key of the UI's links; "
                              "allowed: tracking.uri=…, tracking.experiment=…, --port N")
    check_keys(overrides)
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    validate(OmegaConf.masked_copy(cfg, ["tracking"]))
    return cfg.tracking


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("UI_PORT", DEFAULT_PORT)),
                        help="port of the MLflow UI (default: UI_PORT or 5000)")
    parser.add_argument("overrides", nargs="*", help="tracking.uri=…, tracking.experiment=…")
    args = parser.parse_args(hide_credentials(list(sys.argv[1:] if argv is None else argv)))
    try:
        tracking = _config(args.overrides)
        lines = links(tracking.uri, tracking.experiment, args.port)
    except ConfigError as err:
        refuse(str(err))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
