"""Fig. 4 of the paper: training and validation loss per epoch, one panel per compared model."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from pipelines.study.tables import RunMetrics, loss_name, model_name

COLUMNS = 3


def loss_curves_png(runs: Sequence[RunMetrics]) -> bytes:
    """A PNG with one panel per run (title ``model (loss)``); the best epoch is marked."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(COLUMNS, len(runs))
    rows = math.ceil(len(runs) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), dpi=110)
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, run in zip(panels, runs, strict=False):
        epochs = [entry["epoch"] for entry in run.history]
        axes.plot(epochs, [e["train_loss"] for e in run.history], marker=".", label="training")
        axes.plot(epochs, [e["val_loss"] for e in run.history], marker=".", label="validation")
        axes.axvline(run.best_epoch, color="grey", linestyle=":", label="best val mIoU")
        axes.set_title(f"{model_name(run.arch)} ({loss_name(run.loss)})")
        axes.set_xlabel("epoch")
        axes.set_ylabel("loss")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    for axes in panels[len(runs) :]:
        axes.set_visible(False)
    panels[0].legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
