"""``lsmap study``: the paper's comparison (Tables 1-3, Fig. 4) as one resumable Ray job."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

from pipelines import storage
from pipelines.study.config import ATTENTION_MODELS, BASE_MODELS, GRID_KEYS, LOSSES
from pipelines.training.config import TrainConfig

# Flags default to None so that only flags given override the --config file; the help shows the
# defaults of TrainConfig and the paper's grid.
DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
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
    parser.add_argument("--data", type=storage.absolute, help="chip directory in the Bijie layout")
    parser.add_argument(
        "--out", type=storage.absolute, help="study directory URI (local or s3://); reruns resume"
    )
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
        "--resolution-m", type=float, help="ground resolution of the chips in metres, if known"
    )
    parser.add_argument("--epochs", type=int, help=f"epochs per run (default {DEFAULTS['epochs']})")
    parser.add_argument(
        "--workers",
        type=int,
        help=f"data-parallel Ray Train workers per run (default {DEFAULTS['workers']})",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        help="runs in flight at once (default: all the local cluster holds; on RAY_ADDRESS: all)",
    )
    parser.add_argument(
        "--gpu",
        action=argparse.BooleanOptionalAction,
        help="one GPU per worker, NCCL (default: CPU, gloo)",
    )
    parser.add_argument(
        "--size", type=int, help=f"input size in pixels (default {DEFAULTS['size']})"
    )
    parser.add_argument(
        "--base-width",
        type=int,
        help=f"channels at full resolution (default {DEFAULTS['base_width']})",
    )
    parser.add_argument(
        "--depth", type=int, help=f"number of downsamplings (default {DEFAULTS['depth']})"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help=f"chips per worker and step (default {DEFAULTS['batch_size']})",
    )
    parser.add_argument("--lr", type=float, help=f"Adam learning rate (default {DEFAULTS['lr']:g})")
    parser.add_argument(
        "--seed",
        type=int,
        help=f"seed of split, weights and shuffling (default {DEFAULTS['seed']})",
    )
    parser.add_argument(
        "--dropout", type=float, help=f"dropout rate (default {DEFAULTS['dropout']})"
    )
    parser.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict:
    """The settings and grid lists given as flags (None: not given)."""
    return {key: getattr(args, key) for key in (*TRAIN_FLAGS, *GRID_KEYS)}


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
