"""``ddpm train``: train a model from a TOML configuration, or resume a run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ddpm.checkpoints import META_FILE, CheckpointDir
from ddpm.cli.checks import check_output_folder
from ddpm.configuration import add_override_arguments, overrides_from_args
from ddpm.errors import UserError
from ddpm.pipelines.experiment import (
    ExperimentConfig,
    bundled_configs,
    load_experiment_config,
    run_training,
)
from ddpm.pipelines.stored_config import with_legacy_defaults


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (DDPM Algorithm 1) or an autoencoder for latent diffusion",
        description=(
            "Train a diffusion model, in pixel space or in the latent space of a trained "
            "autoencoder ([latent] autoencoder), or the autoencoder itself (train.objective = "
            "autoencoder, e.g. --config faces64-autoencoder). "
            "Settings come from --config (a TOML file or a bundled "
            f"name: {', '.join(bundled_configs())}), then from --section.key overrides. "
            "The run folder receives checkpoints/, samples/ (grids from the EMA weights), "
            "log.jsonl and config.json. Ctrl-C or SIGTERM finishes the current step, saves a checkpoint "
            "and stops (a second Ctrl-C stops at once, unsaved); one process at a time writes a run folder."
        ),
    )
    p.add_argument("--config", help="TOML file or bundled config name (default: the run's own on --resume)")
    p.add_argument("--out", required=True, help="run folder to write (or to resume)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its newest checkpoint"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    add_override_arguments(p, ExperimentConfig)
    p.set_defaults(handler=run)


def _saved_config(out: Path) -> dict:
    """The run's own ``config.json``, checked; a damaged one is named with what to do."""
    path = out / "config.json"
    if not path.is_file():
        raise UserError(f"nothing to resume: {out} has no config.json; give --config or drop --resume")
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
        saved = with_legacy_defaults(saved)
        load_experiment_config(saved)
    except (ValueError, UserError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        latest = CheckpointDir(out).latest()
        source = f'the "config" entry of {latest / META_FILE}' if latest else "your TOML file (--config)"
        raise UserError(
            f"{path} is damaged ({why}); restore it from {source}, which holds the same settings, "
            "or start a new run with another --out"
        ) from None
    return saved


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_output_folder("--out", out)
    overrides = overrides_from_args(args)
    if args.config:
        source = args.config
    elif args.resume:
        source = _saved_config(out)
    else:
        raise UserError("give --config FILE (or a bundled name), or --resume an existing run")
    config = load_experiment_config(source, overrides)
    if args.print_config:
        from ddpm.configuration import to_dict

        print(json.dumps(to_dict(config), indent=2))
        return 0
    result = run_training(config, out, resume=args.resume, progress=not args.no_progress)
    if not result.main_process:
        return 0
    if config.train.objective == "autoencoder":
        follow = f"ddpm train --config faces64-latent --latent.autoencoder {out} --out LATENT_RUN"
    else:
        follow = f"ddpm sample {out} --num 64 --out {out / 'grid.png'}"
    print(
        f"trained to step {result.step} in {result.elapsed_seconds / 60:.1f} min "
        f"(last loss {result.loss:.4f}); checkpoint {result.checkpoint}\nnext: {follow}"
    )
    return 0
