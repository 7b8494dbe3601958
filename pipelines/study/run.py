"""Running a study on Ray: every training run is a Ray task, so a cluster trains several at once.

Each task calls :func:`pipelines.training.run.train` with no CPU of its own (``num_cpus=0``): the
``TorchTrainer`` inside it asks for its workers' CPUs or GPUs, so the scheduler places as many runs
as the cluster holds. On a local cluster the driver keeps at most as many runs in flight as it
has room for (the rest queue here rather than as idle processes); on a cluster given by
``RAY_ADDRESS``, which may grow, all of a phase's runs are submitted at once. Phase 1 trains the
base models with every loss; phase 2 the attention models with U-Net++'s best loss. A rerun
resumes: runs whose outputs are complete for the same settings are not submitted again (``train``
would only rewrite them), and ``train`` resumes cut runs or names settings that changed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines import storage
from pipelines.bundles import BUNDLE_NAME
from pipelines.errors import InputError, LsmapError
from pipelines.study.config import ATTENTION_BASE, StudyConfig, band_set_label, run_name
from pipelines.study.figure import loss_curves_png
from pipelines.study.tables import (
    RunMetrics,
    StudyTables,
    add_band_table,
    best_losses,
    best_model,
    build_tables,
    loss_name,
    model_name,
)
from pipelines.training.config import RESUMABLE_KEYS, TrainConfig
from pipelines.training.outputs import LOSS_CURVE_NAME, METRICS_NAME

Progress = Callable[[str], None] | None
# (arch, loss), or (arch, loss, band set[, seed]) for the band-set runs of phase 3.
RunKey = tuple[str, ...]


@dataclass
class StudyResult:
    """A finished study: its tables, every run's metrics and the URIs of what it wrote."""

    tables: StudyTables
    runs: dict[RunKey, RunMetrics]
    paths: dict[str, str]


def run_study(
    config: StudyConfig, parallel: int | None = None, progress: Progress = print
) -> StudyResult:
    """Train the study's grid as Ray tasks, then write its tables and figure under ``config.out``.

    ``parallel`` caps the runs in flight (default: what the cluster holds, see the module
    docstring). Joins the Ray cluster of this process (or starts a local one). A failed run does
    not stop the others of its phase; the phase then raises an LsmapError naming every failure.
    """
    from pipelines.ray_runtime import init_ray

    if parallel is not None and parallel < 1:
        raise InputError(f"parallel must be >= 1, got {parallel}")
    check_chips(config.base)
    init_ray()
    slots = parallel if parallel is not None else default_parallel(config.base)
    limit = f"up to {slots} at a time" if slots else "all at once"

    phase1 = config.phase1()
    _emit(
        progress,
        f"phase 1: {len(phase1)} runs ({len(config.archs)} models x {len(config.losses)} "
        f"losses), {limit}",
    )
    train_runs(config, phase1, slots, progress)
    runs = load_runs(config, phase1)

    attention_loss = best_losses(runs, [ATTENTION_BASE], config.losses)[ATTENTION_BASE]
    phase2 = config.phase2(attention_loss)
    _emit(
        progress,
        f"phase 2: {len(phase2)} attention model(s) with {loss_name(attention_loss)}, the loss "
        f"of best validation mIoU for {ATTENTION_BASE}, {limit}",
    )
    train_runs(config, phase2, slots, progress)
    runs.update(load_runs(config, phase2))

    tables = build_tables(runs, config.archs, config.losses, config.attention)
    if config.band_sets:
        arch, loss = best_model(runs, tables)
        phase3 = config.phase3(arch, loss)
        todo = [key for keys in phase3 for key in keys if key not in runs]
        seeds = f", seeds {', '.join(config.seeds)}" if config.seeds else ""
        labels = [band_set_label(band_set) for band_set in config.band_sets]
        _emit(
            progress,
            f"phase 3: {model_name(arch)} with {loss_name(loss)}, the best model by validation "
            f"mIoU, on band sets {', '.join(labels)}{seeds}: {len(todo)} run(s), {limit}",
        )
        train_runs(config, todo, slots, progress)
        runs.update(load_runs(config, todo))
        per_set = [[runs[key] for key in keys] for keys in phase3]
        tables = add_band_table(tables, per_set, labels)
    return StudyResult(tables, runs, write_outputs(config, tables, runs))


def check_chips(base: TrainConfig) -> None:
    """Fail before any run starts where every run would: no chips, or an empty split."""
    from pipelines.training.data import load_splits

    splits = load_splits(base.data, base.seed, base.split_fractions)
    empty = [name for name, records in splits.items() if not records]
    if empty:
        counts = ", ".join(f"{name} {len(records)}" for name, records in splits.items())
        raise InputError(
            f"{base.data}: the {' and '.join(empty)} split(s) would be empty ({counts} chips); "
            "add chips or change split_fractions"
        )


def default_parallel(base: TrainConfig) -> int | None:
    """Runs a local cluster holds at once (its CPUs or GPUs over workers per run); None on a
    ``RAY_ADDRESS`` cluster, which may grow to fit every run."""
    import ray

    if os.environ.get("RAY_ADDRESS"):
        return None
    kind = "GPU" if base.gpu else "CPU"
    available = ray.cluster_resources().get(kind, 0)
    if available < base.workers:
        raise InputError(
            f"{base.workers} worker(s) per run need {base.workers} {kind}(s) but the local Ray "
            f"cluster has {available:g}; lower --workers or set RAY_ADDRESS to a larger cluster"
        )
    return int(available // base.workers)


def train_runs(
    config: StudyConfig, keys: Sequence[RunKey], slots: int | None, progress: Progress
) -> None:
    """Train the runs (``RunKey``) as Ray tasks, at most ``slots`` at once (None: no cap)."""
    import ray

    from pipelines.ray_runtime import in_flight, task_error

    # A task killed with its node is retried (Ray's default for system failures): it resumes.
    remote = ray.remote(num_cpus=0)(_train_task)
    pending = []
    finished = 0
    for key in keys:
        summary = finished_summary(config.run_config(*key))
        if summary is None:
            pending.append(key)
        else:
            finished += 1
            _emit(progress, f"[{finished}/{len(keys)}] {run_name(*key)}: {_describe(summary)}")

    def submit(key: RunKey) -> Callable[[], Any]:
        task = remote.options(name=f"lsmap-study-{run_name(*key)}")
        return lambda: task.remote(config.run_config(*key))

    failures: dict[RunKey, str] = {}
    for key, summary, error in in_flight([(key, submit(key)) for key in pending], slots):
        finished += 1
        prefix = f"[{finished}/{len(keys)}] {run_name(*key)}"
        if error is not None:
            failures[key] = task_error(error)
            _emit(progress, f"{prefix}: failed: {failures[key]}")
            continue
        _emit(progress, f"{prefix}: {_describe(summary)}")
    if failures:
        details = "; ".join(f"{run_name(*key)}: {reason}" for key, reason in failures.items())
        raise LsmapError(
            f"{len(failures)} of {len(keys)} run(s) failed ({details}). Finished runs are kept "
            "under runs/; fix the cause and rerun the study to continue"
        )


def finished_summary(config: TrainConfig) -> dict[str, Any] | None:
    """The summary of a run whose outputs are complete for ``config``; None: it needs ``train``.

    Complete: the bundle, ``metrics.json`` and loss curve exist, were made with the same settings
    (but ``RESUMABLE_KEYS``) and hold ``config.epochs`` epochs or more, so ``train`` would only
    write them again. Anything else goes to ``train``, which resumes the run or refuses changed
    settings with a message naming them.
    """
    names = (BUNDLE_NAME, METRICS_NAME, LOSS_CURVE_NAME)
    if not all(storage.exists(storage.join(config.out, name)) for name in names):
        return None
    document = storage.read_json(storage.join(config.out, METRICS_NAME))
    recorded, history = document.get("config") or {}, document.get("history") or []
    settings = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_KEYS}
    # Settings added since a run was recorded (e.g. bands) had their default value then.
    recorded = {**TrainConfig(data="", out="").to_dict(), **recorded}
    if any(recorded.get(k) != v for k, v in settings.items()) or not history:
        return None
    if history[-1]["epoch"] < config.epochs:
        return None
    return {
        "epochs": history[-1]["epoch"],
        "best_epoch": document["best_epoch"],
        "val_miou": document["best_val"]["miou"],
        "test_miou": (document.get("test") or {}).get("miou"),
        "seconds": None,
    }


def load_runs(config: StudyConfig, keys: Sequence[RunKey]) -> dict[RunKey, RunMetrics]:
    """The metrics of finished runs, read from their ``metrics.json``."""
    runs = {}
    for key in keys:
        uri = storage.join(config.run_config(*key).out, METRICS_NAME)
        runs[key] = RunMetrics.from_document(key[0], key[1], storage.read_json(uri), uri)
    return runs


def write_outputs(
    config: StudyConfig, tables: StudyTables, runs: dict[RunKey, RunMetrics]
) -> dict[str, str]:
    """Write ``tables.md``, ``table1.csv`` .. ``table3.csv`` (``table4.csv`` with band sets) and
    ``loss_curves.png``."""
    paths = {"tables": storage.join(config.out, "tables.md")}
    storage.write_text(paths["tables"], tables.to_markdown(config.to_dict()))
    numbered = [tables.table1, tables.table2, tables.table3]
    if tables.table4 is not None:
        numbered.append(tables.table4)
    for number, table in enumerate(numbered, start=1):
        paths[f"table{number}"] = storage.join(config.out, f"table{number}.csv")
        storage.write_text(paths[f"table{number}"], table.to_csv())
    paths["loss_curves"] = storage.join(config.out, "loss_curves.png")
    figure = loss_curves_png([runs[key] for key in tables.compared])
    storage.write_bytes(paths["loss_curves"], figure)
    paths["runs"] = storage.join(config.out, "runs")
    return paths


def _train_task(config: TrainConfig) -> dict[str, Any]:
    """One run, inside a Ray task: train (or resume, or skip if finished) and summarise it."""
    from pipelines.training.run import train

    started = time.monotonic()
    result = train(config, progress=None)
    best = next(e for e in result.state.history if e["epoch"] == result.state.best_epoch)
    return {
        "epochs": result.state.epoch,
        "best_epoch": result.state.best_epoch,
        "val_miou": best["val_miou"],
        "test_miou": (result.test_metrics or {}).get("miou"),
        "seconds": time.monotonic() - started,
    }


def _describe(summary: dict[str, Any]) -> str:
    timing = "finished earlier" if summary["seconds"] is None else f"{summary['seconds']:.0f} s"
    return (
        f"best epoch {summary['best_epoch']}/{summary['epochs']}, val mIoU "
        f"{_number(summary['val_miou'])}, test mIoU {_number(summary['test_miou'])}, {timing}"
    )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _emit(progress: Progress, line: str) -> None:
    if progress is not None:
        progress(line)
