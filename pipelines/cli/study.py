"""``lsmap study``: the paper's comparison (Tables 1-3, Fig. 4) as one resumable Ray job."""

from __future__ import annotations

import argparse

from pipelines.cli import add_training_settings, training_overrides
from pipelines.study.config import ATTENTION_MODELS, BASE_MODELS, GRID_KEYS, LOSSES

# The settings of `lsmap train` a study takes as flags (a --config file may hold the others).
TRAIN_FLAGS = ("data", "out", "epochs", "workers", "gpu", "size", "base_width", "depth")
TRAIN_FLAGS += ("batch_size", "lr", "seed", "dropout", "resolution_m")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study",
        help="train the paper's models x losses grid on Ray and write its tables and loss curves",
        description=(
            "Run the paper's comparison on Bijie-layout chips. Phase 1 trains each base model "
            "(--archs) with each loss (--losses); phase 2 trains the attention models "
            "(--attention) with the loss that gave U-Net++ its best validation mIoU. Every run is "
            "a Ray task with its own --workers Ray Train workers, so a cluster trains several at "
            "once. Writes under --out: tables.md, table1.csv (test mIoU per model and loss), "
            "table2.csv (each base model with its best loss, chosen by validation mIoU, and six "
            "test metrics), table3.csv (U-Net++ and its attention variants), loss_curves.png and "
            "every run under runs/<arch>-<loss>/; with --band-sets, table4.csv (the best model of "
            "Tables 2 and 3 on each band set, e.g. RGB + DEM against RGB + DEM + terrain bands, "
            "over --seeds). "
            "Rerunning with the same --out skips finished "
            "runs and resumes cut ones. --config FILE.yaml may hold any `lsmap train` setting "
            "but arch and loss, plus archs, losses and attention lists; flags given override it."
        ),
    )
    parser.add_argument("--config", help="YAML file of training settings and grid lists")
    add_training_settings(parser, TRAIN_FLAGS)
    parser.add_argument(
        "--archs",
        help=f"comma-separated base models (default {','.join(BASE_MODELS)}; must hold unetpp)",
    )
    parser.add_argument("--losses", help=f"comma-separated losses (default {','.join(LOSSES)})")
    parser.add_argument(
        "--attention",
        help=f"comma-separated attention models (default {','.join(ATTENTION_MODELS)})",
    )
    parser.add_argument(
        "--band-sets",
        help="comma-separated band sets for Table 4, each +-joined band names or sets (rgb, rgbd, "
        "terrain) or a layers file (.yaml, see docs/layers.md), e.g. rgbd,rgbd+terrain: the best "
        "model of Tables 2 and 3 trained on each (default: none; terrain bands need "
        "--resolution-m)",
    )
    parser.add_argument(
        "--seeds",
        help="comma-separated seeds: Table 4 trains each band set with each and shows the means "
        "and the spread of mIoU (default: the grid's --seed only)",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        help="runs in flight at once (default: all the local cluster holds; on RAY_ADDRESS: all)",
    )
    parser.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict:
    """The settings and grid lists given as flags (None: not given)."""
    return training_overrides(args, (*TRAIN_FLAGS, *GRID_KEYS))


def run(args: argparse.Namespace) -> int:
    from pipelines.study import StudyConfig
    from pipelines.study.run import run_study

    config = StudyConfig.from_sources(args.config, overrides(args))
    base = config.base
    print(
        f"study on {base.data} into {base.out}: {base.epochs} epoch(s) per run, "
        f"{base.workers} worker(s) per run, batch {base.batch_size}, lr {base.lr:g}",
        flush=True,
    )
    result = run_study(config, args.parallel, progress=lambda line: print(line, flush=True))
    print()
    print(result.tables.to_markdown(config.to_dict()))
    for name, uri in result.paths.items():
        print(f"{name}: {uri}")
    return 0
