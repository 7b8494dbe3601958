"""The study's tables, built from its runs' ``metrics.json`` documents: pure, no I/O, no Ray.

Table 1 holds the test mIoU of every base model with every loss. Table 2 holds each base model
with its best loss, chosen by validation mIoU (the test split only reports), with the six metrics
of the paper. Table 3 holds plain U-Net++ and its attention variants, all trained with U-Net++'s
best loss. Table 4 (when the study has band sets) holds the best model of Tables 2 and 3 (by
validation mIoU) trained on each band set, e.g. RGB + DEM against RGB + DEM + terrain bands.
Ties are broken by the order of the grid, so the same runs always give the same tables.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pipelines.errors import InputError
from pipelines.study.config import ATTENTION_BASE, run_name

METRICS = ("miou", "auc", "precision", "recall", "f1", "accuracy")
METRIC_COLUMNS = ("model", "loss", "val_miou", *METRICS)
LABELS = {
    "bands": "Bands",
    "miou_spread": "mIoU spread",
    "model": "Model",
    "loss": "Loss",
    "val_miou": "Val mIoU",
    "miou": "mIoU",
    "auc": "AUC",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "accuracy": "Accuracy",
}
MODEL_NAMES = {
    "unet": "U-Net",
    "resunet": "ResUNet",
    "unetpp": "U-Net++",
    "unetpp_sa": "U-Net++ + SA",
    "unetpp_ca": "U-Net++ + CA",
    "unetpp_sa_ca": "U-Net++ + SA + CA",
}
LOSS_NAMES = {"bce": "BCE", "focal": "Focal", "dice": "Dice", "wce": "WCE"}
_TEXT_COLUMNS = ("bands", "model", "loss")


@dataclass(frozen=True)
class RunMetrics:
    """What the tables and the figure need from one run's ``metrics.json``."""

    arch: str
    loss: str
    best_epoch: int
    val: Mapping[str, float | None]
    test: Mapping[str, float | None]
    history: tuple[Mapping[str, Any], ...]

    @property
    def val_miou(self) -> float | None:
        return self.val["miou"]

    @classmethod
    def from_document(
        cls, arch: str, loss: str, document: Mapping[str, Any], source: str
    ) -> RunMetrics:
        """Read a ``metrics.json`` document; ``source`` names it in errors."""
        try:
            val, test, history = document["best_val"], document["test"], document["history"]
            if test is None:
                raise InputError(f"{source}: the run has no test metrics (no test chips)")
            values = [val["miou"], *(test[name] for name in METRICS)]
            curves = [(e["epoch"], e["train_loss"], e["val_loss"]) for e in history]
            best_epoch = int(document["best_epoch"])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(
                f"{source}: not a complete training metrics document ({err!r})"
            ) from err
        if not curves or any(not isinstance(v, (int, float, type(None))) for v in values):
            raise InputError(f"{source}: not a complete training metrics document")
        return cls(arch, loss, best_epoch, dict(val), dict(test), tuple(history))


@dataclass(frozen=True)
class Table:
    """Rows of values keyed by ``columns``; ``bold`` cells are ``(row index, column)`` pairs."""

    title: str
    note: str
    columns: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]
    bold: frozenset[tuple[int, str]] = frozenset()

    def to_csv(self) -> str:
        """The rows as CSV with a header of the column keys; full precision, empty for NaN."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({key: "" if _missing(row[key]) else row[key] for key in self.columns})
        return buffer.getvalue()

    def to_markdown(self) -> str:
        """A markdown section: title, note and the table (4 decimals, ``n/a`` for NaN)."""
        header = [LABELS.get(c, LOSS_NAMES.get(c, c)) for c in self.columns]
        align = ["---" if c in _TEXT_COLUMNS else "---:" for c in self.columns]
        lines = [f"## {self.title}", "", self.note, "", _markdown_row(header), _markdown_row(align)]
        for index, row in enumerate(self.rows):
            cells = [_cell(key, row[key]) for key in self.columns]
            cells = [
                f"**{cell}**" if (index, key) in self.bold else cell
                for key, cell in zip(self.columns, cells, strict=True)
            ]
            lines.append(_markdown_row(cells))
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class StudyTables:
    """The three tables with the choices behind them."""

    table1: Table
    table2: Table
    table3: Table
    best_losses: Mapping[str, str]  # base model -> its loss of best validation mIoU
    best_base: str  # the base model of best validation mIoU (at its best loss)
    attention_loss: str  # U-Net++'s best loss, which the attention models were trained with
    compared: tuple[tuple[str, str], ...]  # (arch, loss) of Table 2's rows, then the attention ones
    table4: Table | None = None  # the best model per band set, when the study has band sets

    def to_markdown(self, settings: Mapping[str, Any]) -> str:
        """The whole ``tables.md``: the settings, the three tables and the loss-curve figure."""
        intro = (
            f"Chips: `{settings['data']}`. Each run: {settings['epochs']} epoch(s), "
            f"{settings['workers']} worker(s), batch {settings['batch_size']}, lr "
            f"{settings['lr']:g}, {settings['size']} px, base width {settings['base_width']}, "
            f"depth {settings['depth']}, dropout {settings['dropout']}, seed {settings['seed']}. "
            "Each run keeps its epoch of best validation mIoU; the metrics shown are on the test "
            "split, except Val mIoU, which chose the best loss."
        )
        figure = (
            "## Figure 4. Loss curves\n\nTraining and validation loss per epoch of the models "
            "of Tables 2 and 3 (each run's own curve is in `runs/<arch>-<loss>/loss_curve.png`)."
            "\n\n![Training and validation loss per model](loss_curves.png)\n"
        )
        sections = [self.table1, self.table2, self.table3]
        if self.table4 is not None:
            sections.append(self.table4)
        body = "\n".join(table.to_markdown() for table in sections)
        return f"# Landslide segmentation study\n\n{intro}\n\n{body}\n{figure}"


def best_losses(
    runs: Mapping[tuple[str, str], RunMetrics], archs: Sequence[str], losses: Sequence[str]
) -> dict[str, str]:
    """Each model's loss of highest validation mIoU (NaN ranks last; ties: first in ``losses``)."""
    return {arch: max(losses, key=lambda loss: _rank(runs[arch, loss].val_miou)) for arch in archs}


def build_tables(
    runs: Mapping[tuple[str, str], RunMetrics],
    archs: Sequence[str],
    losses: Sequence[str],
    attention: Sequence[str],
) -> StudyTables:
    """The study's tables from its runs, keyed by ``(arch, loss)``; a missing run is an error."""
    _require(runs, [(arch, loss) for arch in archs for loss in losses])
    best = best_losses(runs, archs, losses)
    attention_loss = best[ATTENTION_BASE]
    _require(runs, [(arch, attention_loss) for arch in attention])
    best_base = max(archs, key=lambda arch: _rank(runs[arch, best[arch]].val_miou))

    table1 = Table(
        title="Table 1. Test mIoU of each base model with each loss",
        note="In bold: the model's best loss, chosen by validation mIoU (not by test mIoU).",
        columns=("model", *losses),
        rows=tuple(
            {"model": arch, **{loss: runs[arch, loss].test["miou"] for loss in losses}}
            for arch in archs
        ),
        bold=frozenset((index, best[arch]) for index, arch in enumerate(archs)),
    )
    table2 = Table(
        title="Table 2. Each base model with its best loss",
        note="Best loss chosen by validation mIoU (Val mIoU); the other metrics are on the test split.",
        columns=METRIC_COLUMNS,
        rows=tuple(_metric_row(runs[arch, best[arch]]) for arch in archs),
    )
    reason = (
        "the best base model"
        if best_base == ATTENTION_BASE
        else f"as in the paper, although {model_name(best_base)} was the best base model here"
    )
    table3 = Table(
        title=f"Table 3. Attention added to {model_name(ATTENTION_BASE)}",
        note=(
            f"Attention is added to {model_name(ATTENTION_BASE)} ({reason}, by validation mIoU); every "
            f"row uses {model_name(ATTENTION_BASE)}'s best loss, {loss_name(attention_loss)}. Metrics on "
            "the test split."
        ),
        columns=METRIC_COLUMNS,
        rows=tuple(
            _metric_row(runs[arch, attention_loss]) for arch in (ATTENTION_BASE, *attention)
        ),
    )
    compared = tuple((arch, best[arch]) for arch in archs) + tuple(
        (arch, attention_loss) for arch in attention
    )
    return StudyTables(table1, table2, table3, best, best_base, attention_loss, compared)


def best_model(runs: Mapping[tuple[str, ...], RunMetrics], tables: StudyTables) -> tuple[str, str]:
    """The ``(arch, loss)`` of highest validation mIoU among Tables 2 and 3 (ties: first)."""
    return max(tables.compared, key=lambda key: _rank(runs[key].val_miou))


def add_band_table(
    tables: StudyTables, runs: Sequence[Sequence[RunMetrics]], band_sets: Sequence[str]
) -> StudyTables:
    """``tables`` with Table 4: the runs of one model and loss on each band set, in order, one
    per seed (a row holds their means, and the spread of test mIoU over seeds)."""
    (arch, loss), *others = {(run.arch, run.loss) for group in runs for run in group}
    if others:
        raise ValueError("Table 4 compares band sets of one model and loss")
    seeds = {len(group) for group in runs}
    if len(seeds) != 1:
        raise ValueError("Table 4 compares band sets trained with the same seeds")
    (count,) = seeds
    spread = ("miou_spread",) if count > 1 else ()
    seeded = (
        f" Each band set is trained with {count} seeds (split, initial weights and shuffling): "
        "every metric is their mean, and mIoU spread is the largest minus the smallest test "
        "mIoU of the seeds."
        if count > 1
        else ""
    )
    table4 = Table(
        title="Table 4. Input bands",
        note=(
            f"{model_name(arch)} with {loss_name(loss)}, the best model of Tables 2 and 3 by "
            "validation mIoU, trained on each band set (rgbd: RGB + DEM; terrain: slope, "
            "aspect, hillshade, curvature and relative elevation derived from the DEM; a layers "
            f"file by its name, see docs/layers.md).{seeded} Metrics on the test split."
        ),
        columns=("bands", *METRIC_COLUMNS, *spread),
        rows=tuple(
            {"bands": label, **_mean_row(group)}
            for label, group in zip(band_sets, runs, strict=True)
        ),
    )
    return replace(tables, table4=table4)


def _mean_row(runs: Sequence[RunMetrics]) -> dict[str, Any]:
    """The metric row of one run, or the means of several (seeds) and their mIoU spread."""
    rows = [_metric_row(run) for run in runs]
    if len(rows) == 1:
        return rows[0]
    mean = dict(rows[0])
    for key in ("val_miou", *METRICS):
        values = [row[key] for row in rows]
        mean[key] = None if any(_missing(v) for v in values) else sum(values) / len(values)
    mious = [row["miou"] for row in rows]
    mean["miou_spread"] = None if any(_missing(v) for v in mious) else max(mious) - min(mious)
    return mean


def _require(runs: Mapping[tuple[str, str], RunMetrics], keys: Sequence[tuple[str, str]]) -> None:
    missing = [run_name(*key) for key in keys if key not in runs]
    if missing:
        raise InputError(f"the study has no finished run(s) {', '.join(missing)}")


def _metric_row(run: RunMetrics) -> dict[str, Any]:
    return {
        "model": run.arch,
        "loss": run.loss,
        "val_miou": run.val_miou,
        **{name: run.test[name] for name in METRICS},
    }


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _rank(value: float | None) -> float:
    return -math.inf if _missing(value) else value


def model_name(arch: str) -> str:
    """The paper's name of an architecture (``unetpp_sa`` -> ``U-Net++ + SA``)."""
    return MODEL_NAMES.get(arch, arch)


def loss_name(loss: str) -> str:
    """The paper's name of a loss (``wce`` -> ``WCE``); other specs as given."""
    return LOSS_NAMES.get(loss, loss)


def _cell(key: str, value: Any) -> str:
    if key == "bands":
        return str(value)
    if key == "model":
        return model_name(value)
    if key == "loss":
        return loss_name(value)
    return "n/a" if _missing(value) else f"{value:.4f}"


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
