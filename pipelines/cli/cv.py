"""``lsmap cv``: repeated spatial (and random) k-fold cross-validation on a region."""

from __future__ import annotations

import argparse

from pipelines.cli import add_training_settings, training_overrides

# The settings of `lsmap train` a cross-validation takes as flags (a --config file may hold the
# others); arch comes from --models, the fold and partition from the folds it runs.
CV_FLAGS = ("region", "out", "folds", "loss", "epochs", "workers", "gpu", "batch_size", "lr")
CV_FLAGS += ("seed", "size", "base_width", "depth", "dropout", "resolution_m", "bands")
CV_FLAGS += ("block_m", "buffer_m", "split_fractions", "negatives", "windows_per_epoch")


def register(subparsers: argparse._SubParsersAction) -> None:
    from pipelines.regional.split import PARTITIONS

    parser = subparsers.add_parser(
        "cv",
        help="cross-validate networks and per-pixel baselines on a region (spatial and random "
        "folds)",
        description=(
            "Repeated k-fold cross-validation on a region file: for each partition (spatial "
            "blocks, k-means clusters of blocks, and random pixels for contrast), repeat and "
            "fold, every --models model trains on the other folds and is scored on the fold "
            "(AUROC at held-out points for a points inventory, else over labelled pixels; mIoU "
            "and F1 at the pixel labels). Networks are the zoo's architectures, each fold a Ray "
            "Train run; baselines (logistic, forest) are fitted per pixel on the same layers at "
            "the same labelled pixels, each fold a Ray task. Writes under --out: cv.json, cv.csv "
            "(mean, median, sd per model and partition), folds.csv, auroc.png, report.md. "
            "Rerunning into the same --out resumes finished folds."
        ),
    )
    parser.add_argument("--config", help="YAML file of training settings")
    add_training_settings(parser, CV_FLAGS)
    parser.add_argument(
        "--models",
        default="unet,logistic,forest",
        help="comma-separated architectures (see `lsmap models`) and baselines (logistic, "
        "forest) (default unet,logistic,forest)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="repeats, each its own seed")
    parser.add_argument(
        "--partitions",
        default="blocks,random",
        help=f"comma-separated fold partitions ({', '.join(PARTITIONS)}) (default blocks,random)",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        help="network folds in flight at once (default: all the local cluster holds)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.susceptibility.cv import CvConfig, run_cv
    from pipelines.training.config import TrainConfig

    given = training_overrides(args, CV_FLAGS)
    folds = given.pop("folds") or 5
    config = CvConfig(
        base=TrainConfig.from_sources(args.config, given),
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        folds=folds,
        repeats=args.repeats,
        partitions=tuple(p.strip() for p in args.partitions.split(",") if p.strip()),
    )
    print(
        f"cv of {', '.join(config.models)} on {config.base.region} into {config.base.out}: "
        f"{config.folds} folds x {config.repeats} repeat(s), {', '.join(config.partitions)}",
        flush=True,
    )
    document = run_cv(config, parallel=args.parallel)
    for entry in document["summary"]:
        sd = "" if entry["auroc_sd"] is None else f" +- {entry['auroc_sd']:.3f}"
        print(
            f"{entry['model']:>12s} {entry['partition']:>7s}  AUROC {entry['auroc_mean']:.3f}{sd}"
        )
    print(f"wrote {config.base.out}/cv.json, cv.csv, folds.csv, auroc.png, report.md")
    return 0
