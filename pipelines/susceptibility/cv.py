"""``lsmap cv``: repeated k-fold cross-validation of networks and per-pixel baselines on a region.

For each partition (spatial ``blocks`` or ``kmeans`` folds, and ``random`` folds for contrast;
:mod:`pipelines.regional.split`), each repeat (a seed) and each fold, every model trains on the
other folds and is scored on the fold's pixels: a network through a Ray Train run (``train``,
which scores its test blocks), a baseline (:mod:`pipelines.susceptibility.baselines`) in a Ray
task of one CPU; both are Ray tasks, so a cluster runs many folds at once. AUROC is the fold's
score (at the held-out points for a points inventory, else over its labelled pixels), with
mIoU and F1 at the pixel labels.

A fold's result is written as it finishes (``folds/<partition>-r<repeat>-f<fold>/<model>.json``),
so a rerun into the same folder resumes; the summary is ``cv.json``, ``cv.csv`` (mean, median and
standard deviation per model and partition), ``folds.csv``, ``auroc.png`` (a box plot) and
``report.md``.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from pipelines import storage
from pipelines.errors import InputError, LsmapError
from pipelines.regional.split import PARTITIONS, TEST
from pipelines.susceptibility.baselines import BASELINES
from pipelines.training.config import TrainConfig

Progress = Callable[[str], None] | None
CONFIG_FILE = "cv_config.json"
METRICS = ("auroc", "miou", "f1")


@dataclass(frozen=True)
class FoldKey:
    """One model on one fold of one repeat of one partition."""

    partition: str
    repeat: int
    fold: int
    model: str

    @property
    def name(self) -> str:
        return f"{self.partition}-r{self.repeat}-f{self.fold}"


@dataclass(frozen=True)
class CvConfig:
    """A cross-validation: the training settings (``base``: region, out, network settings),
    the models (architectures and baselines), folds, repeats and partitions."""

    base: TrainConfig
    models: tuple[str, ...]
    folds: int = 5
    repeats: int = 1
    partitions: tuple[str, ...] = ("blocks", "random")

    def __post_init__(self) -> None:
        from lsmodel.models import ARCHITECTURES

        if self.base.region is None:
            raise InputError("cross-validation needs a region (a region file with its inventory)")
        unknown = [m for m in self.models if m not in (*ARCHITECTURES, *BASELINES)]
        if unknown or not self.models:
            raise InputError(
                f"unknown model(s) {unknown}; choose architectures ({', '.join(ARCHITECTURES)}) "
                f"and baselines ({', '.join(BASELINES)})"
            )
        wrong = [p for p in self.partitions if p not in PARTITIONS]
        if wrong or not self.partitions:
            raise InputError(f"unknown partition(s) {wrong}; choose from {', '.join(PARTITIONS)}")
        if self.folds < 2 or self.repeats < 1:
            raise InputError(f"need folds >= 2 and repeats >= 1, got {self.folds}, {self.repeats}")

    def keys(self) -> list[FoldKey]:
        return [
            FoldKey(partition, repeat, fold, model)
            for partition in self.partitions
            for repeat in range(self.repeats)
            for fold in range(self.folds)
            for model in self.models
        ]

    def fold_config(self, key: FoldKey) -> TrainConfig:
        """The training settings of one fold: its split (the repeat's seed) and, for a network,
        its architecture and run folder."""
        return replace(
            self.base,
            arch=key.model if key.model not in BASELINES else self.base.arch,
            out=storage.join(self.base.out, "runs", f"{key.name}-{key.model}"),
            seed=self.base.seed + key.repeat,
            folds=self.folds,
            fold=key.fold,
            partition=key.partition,
        )

    def result_uri(self, key: FoldKey) -> str:
        return storage.join(self.base.out, "folds", key.name, f"{key.model}.json")

    def record(self) -> dict[str, Any]:
        return {
            "base": self.base.to_dict(),
            "models": list(self.models),
            "folds": self.folds,
            "repeats": self.repeats,
            "partitions": list(self.partitions),
        }


def check_folds(config: CvConfig) -> None:
    """Refuse, before any run, folds that cannot be scored: fewer landslides (or absence points)
    than folds, or a fold whose test pixels hold no landslide."""
    from pipelines.training.region import bind_run

    for partition in config.partitions:
        for repeat in range(config.repeats):
            first = config.fold_config(FoldKey(partition, repeat, 0, config.models[0]))
            _, source, _, _ = bind_run(first)
            inventory = source.inventory
            classes = {"landslides": len(inventory.presences)}
            if inventory.kind == "points":
                classes["absence points"] = len(inventory.absences)
            for what, count in classes.items():
                if count < config.folds:
                    raise InputError(
                        f"{inventory.source}: {count} {what}, fewer than the {config.folds} "
                        "folds: each fold needs some to score; use fewer folds"
                    )
            anchors = _presence_pixels(source)
            for fold in range(config.folds):
                where = f"fold {fold} of repeat {repeat} ({partition} partition)"
                key = FoldKey(partition, repeat, fold, config.models[0])
                _, _, blocks, sampler = bind_run(config.fold_config(key))
                rows, cols = anchors[:, 0] // blocks.block, anchors[:, 1] // blocks.block
                if not (blocks.blocks[rows, cols] == TEST).any():
                    raise InputError(
                        f"{config.base.region}: {where} holds no landslide of "
                        f"{inventory.source} in its test pixels; use fewer folds or smaller "
                        "blocks (--block-m)"
                    )
                if not sampler.reach_landslides(sampler.train_windows(1)):
                    raise InputError(
                        f"{config.base.region}: in {where} no training window reaches a "
                        "landslide (the others lie in held-out blocks or within their buffer); "
                        "use fewer folds, smaller blocks (--block-m) or a smaller --buffer-m"
                    )


def _presence_pixels(source: Any) -> np.ndarray:
    """``int (N, 2)``: grid pixels of a point in each presence (inside the grid)."""
    points = source.inventory.presences.geometry.representative_point()
    rows, cols = source.grid.pixels(points.x.to_numpy(), points.y.to_numpy())
    inside = (rows >= 0) & (rows < source.grid.height) & (cols >= 0) & (cols < source.grid.width)
    return np.stack([rows[inside], cols[inside]], axis=1)


def fold_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """A fold's AUROC (at points for a points inventory, else over labelled pixels), mIoU, F1."""
    auroc = metrics["point_auc"] if "point_auc" in metrics else metrics["auc"]
    return {
        "auroc": float(auroc),
        "miou": float(metrics["miou"]),
        "f1": float(metrics["f1"]),
        "pixels": int(metrics["pixels"]),
    }


def _network_fold(config: TrainConfig) -> dict[str, float]:
    """One network fold, in a Ray task: train (or resume) on the fold's split, score its test."""
    from pipelines.training.run import train

    result = train(config, progress=None)
    return fold_scores(result.test_metrics)


def _baseline_fold(config: TrainConfig, model: str) -> dict[str, float]:
    """One baseline fold, in a Ray task: fit on the training windows' labelled pixels, score the
    fold's test pixels as a network's are scored."""
    from pipelines.regional.evaluate import score_region
    from pipelines.susceptibility.baselines import build_baseline, pixel_predictor, training_pixels
    from pipelines.training.region import bind_run

    config, source, split, sampler = bind_run(config)
    x, y = training_pixels(source, sampler, config.seed)
    if len(np.unique(y)) < 2:
        raise InputError(
            f"{config.region}: the training pixels of fold {config.fold} hold one class only; "
            "use fewer folds or smaller blocks"
        )
    fitted = build_baseline(model, config.seed).fit(x, y)
    metrics = score_region(
        pixel_predictor(fitted), source, split, TEST, size=config.size, threshold=0.5
    )
    return fold_scores(metrics)


def run_cv(config: CvConfig, parallel: int | None = None, progress: Progress = print) -> dict:
    """Run every fold not yet finished in ``config.base.out`` as Ray tasks (at most ``parallel``
    network folds at once; default: what the local cluster holds), then write the summary.
    Returns the ``cv.json`` document."""
    import ray

    from pipelines.ray_runtime import in_flight, init_ray, task_error
    from pipelines.study.run import default_parallel

    _check_settings(config)
    init_ray()
    check_folds(config)
    keys = config.keys()
    done = {key for key in keys if storage.exists(config.result_uri(key))}
    todo = [key for key in keys if key not in done]
    _emit(progress, f"{len(keys)} fold run(s): {len(done)} finished before, {len(todo)} to run")
    networks = ray.remote(num_cpus=0)(_network_fold)  # its Ray Train workers hold the CPUs
    baselines = ray.remote(num_cpus=1)(_baseline_fold)

    def submit(key: FoldKey) -> Callable[[], Any]:
        fold = config.fold_config(key)
        name = f"lsmap-cv-{key.name}-{key.model}"
        if key.model in BASELINES:
            return lambda: baselines.options(name=name).remote(fold, key.model)
        return lambda: networks.options(name=name).remote(fold)

    slots = parallel if parallel is not None else default_parallel(config.base)
    failures = {}
    finished = len(done)
    for key, scores, error in in_flight([(key, submit(key)) for key in todo], slots):
        finished += 1
        prefix = f"[{finished}/{len(keys)}] {key.name} {key.model}"
        if error is not None:
            failures[key] = task_error(error)
            _emit(progress, f"{prefix}: failed: {failures[key]}")
            continue
        storage.write_json(config.result_uri(key), {**asdict(key), **scores})
        _emit(progress, f"{prefix}: AUROC {scores['auroc']:.3f}")
    if failures:
        details = "; ".join(f"{k.name} {k.model}: {reason}" for k, reason in failures.items())
        raise LsmapError(
            f"{len(failures)} of {len(keys)} fold run(s) failed ({details}); finished folds are "
            "kept: fix the cause and run the same command again to continue"
        )
    rows = [storage.read_json(config.result_uri(key)) for key in keys]
    return write_summary(config, rows)


def _check_settings(config: CvConfig) -> None:
    """Record the settings in a new folder; refuse a folder that holds a cv of other settings
    (its finished folds would be mixed with these)."""
    uri = storage.join(config.base.out, CONFIG_FILE)
    record = config.record()
    if storage.exists(uri):
        recorded = storage.read_json(uri)
        if recorded != record:
            changed = sorted(k for k in {*record, *recorded} if record.get(k) != recorded.get(k))
            raise InputError(
                f"{storage.redact(config.base.out)} holds a cross-validation with other "
                f"settings ({', '.join(changed)} differ); use another --out"
            )
        return
    storage.write_json(uri, record)


def summarise(rows: Sequence[dict]) -> list[dict]:
    """Mean, median and sample standard deviation of each metric per model and partition."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["partition"]), []).append(row)
    summary = []
    for (model, partition), members in groups.items():
        entry: dict[str, Any] = {"model": model, "partition": partition, "folds": len(members)}
        for metric in METRICS:
            values = [m[metric] for m in members if np.isfinite(m[metric])]
            entry[f"{metric}_mean"] = statistics.fmean(values) if values else None
            entry[f"{metric}_median"] = statistics.median(values) if values else None
            entry[f"{metric}_sd"] = statistics.stdev(values) if len(values) > 1 else None
        summary.append(entry)
    return summary


def best_model(config: CvConfig, summary: Sequence[dict]) -> dict | None:
    """The model with the highest mean AUROC under the first spatial partition (None: only
    random folds were run, which rank nothing)."""
    spatial = [p for p in config.partitions if p != "random"]
    if not spatial:
        return None
    candidates = [
        s for s in summary if s["partition"] == spatial[0] and s["auroc_mean"] is not None
    ]
    return max(candidates, key=lambda s: s["auroc_mean"]) if candidates else None


def write_summary(config: CvConfig, rows: list[dict]) -> dict:
    """Write ``folds.csv``, ``cv.csv``, ``auroc.png``, ``report.md`` and, last, ``cv.json``."""
    out = config.base.out
    summary = summarise(rows)
    best = best_model(config, summary)
    storage.write_text(
        storage.join(out, "folds.csv"),
        _csv(rows, ["partition", "repeat", "fold", "model", *METRICS, "pixels"]),
    )
    columns = ["model", "partition", "folds"]
    columns += [f"{metric}_{stat}" for metric in METRICS for stat in ("mean", "median", "sd")]
    storage.write_text(storage.join(out, "cv.csv"), _csv(summary, columns))
    storage.write_bytes(storage.join(out, "auroc.png"), auroc_boxplot(config, rows))
    document = {
        "config": config.record(),
        "summary": summary,
        "best": best,
        "folds": rows,
    }
    storage.write_text(storage.join(out, "report.md"), report_markdown(config, summary, best))
    storage.write_json(storage.join(out, "cv.json"), document)
    return document


def _csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return buffer.getvalue()


def auroc_boxplot(config: CvConfig, rows: Sequence[dict]) -> bytes:
    """PNG: a box per model and partition of the folds' AUROC, partitions side by side."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1.6 + 1.2 * len(config.models), 4), dpi=100)
    ax = figure.subplots()
    width = 0.8 / len(config.partitions)
    for p, partition in enumerate(config.partitions):
        data = [
            [r["auroc"] for r in rows if r["model"] == m and r["partition"] == partition]
            for m in config.models
        ]
        positions = np.arange(len(config.models)) + (p - (len(config.partitions) - 1) / 2) * width
        boxes = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True)
        for box in boxes["boxes"]:
            box.set_facecolor(f"C{p}")
            box.set_alpha(0.6)
        ax.plot([], [], color=f"C{p}", linewidth=8, alpha=0.6, label=f"{partition} folds")
    ax.set_xticks(np.arange(len(config.models)), config.models)
    ax.set_ylabel("AUROC")
    ax.legend(loc="lower right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def report_markdown(config: CvConfig, summary: Sequence[dict], best: dict | None) -> str:
    """``report.md``: the table, the best model and how to train the final one."""

    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    base = config.base
    lines = [
        "# Cross-validation",
        "",
        f"Region `{base.region}`, {config.folds} folds x {config.repeats} repeat(s), partitions "
        f"{', '.join(config.partitions)}; networks: {base.epochs} epochs, {base.size} px, "
        f"loss {base.loss}.",
        "",
        "| model | partition | folds | AUROC mean | median | sd | mIoU mean | F1 mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['model']} | {s['partition']} | {s['folds']} | {number(s['auroc_mean'])} | "
            f"{number(s['auroc_median'])} | {number(s['auroc_sd'])} | {number(s['miou_mean'])} | "
            f"{number(s['f1_mean'])} |"
        )
    lines += ["", "![AUROC per fold](auroc.png)", ""]
    if "random" in config.partitions:
        lines.append(
            "Random folds test on pixels beside those a model trained on; the gap to the spatial "
            "folds is how much a random split would overstate the skill."
        )
    networks = [s for s in summary if s["model"] not in BASELINES]
    network = best_model(config, networks)
    if best is not None:
        lines += [
            "",
            f"Best by spatial AUROC: **{best['model']}** ({number(best['auroc_mean'])} +- "
            f"{number(best['auroc_sd'])}).",
        ]
    if network is not None:
        lines += [
            "",
            f"CV measured the skill of {network['model']}, the best network; the model behind the "
            "final map is trained once more on all blocks but the validation ones (no test "
            "blocks), e.g.:",
            "",
            "```bash",
            _final_command(config, network["model"]),
            "```",
        ]
    return "\n".join(lines) + "\n"


def _final_command(config: CvConfig, model: str) -> str:
    base = config.base
    val = base.split_fractions[1]
    inputs = "" if base.layers else f" --bands {','.join(base.bands)}"
    return (
        f"lsmap train --region {base.region} --out FINAL --arch {model} --loss {base.loss} "
        f"--epochs {base.epochs} --size {base.size} --base-width {base.base_width} "
        f"--depth {base.depth}{inputs} --block-m {base.block_m:g} "
        f"--split-fractions {1 - val:g} {val:g} 0"
    )


def _emit(progress: Progress, line: str) -> None:
    if progress is not None:
        progress(line)
