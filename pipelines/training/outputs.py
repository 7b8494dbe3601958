"""What a finished run leaves under ``--out``: the bundle, ``metrics.json`` and the loss curve."""

from __future__ import annotations

import io
import math
from typing import Any

from lsmodel.bundle import ModelBundle
from lsmodel.models import build_model
from pipelines import storage
from pipelines.bundles import save_bundle
from pipelines.layers import terrain_params
from pipelines.training.config import TrainConfig
from pipelines.training.data import TrainingStats
from pipelines.training.worker import TrainState

METRICS_NAME = "metrics.json"
LOSS_CURVE_NAME = "loss_curve.png"


def json_ready(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no NaN), containers converted too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def split_info(config: TrainConfig) -> dict[str, Any]:
    """What reproduces a chip run's split (``lsmap evaluate --split`` reads it); a region run
    records its blocks instead (:meth:`pipelines.training.region.RegionPlan.split_record`)."""
    return {"seed": config.seed, "fractions": list(config.split_fractions)}


def best_val_metrics(state: TrainState) -> dict[str, Any]:
    """The validation metrics of the best epoch, without the ``val_`` prefix."""
    entry = next(e for e in state.history if e["epoch"] == state.best_epoch)
    return {key[4:]: value for key, value in entry.items() if key.startswith("val_")}


def make_bundle(
    config: TrainConfig,
    state: TrainState,
    stats: TrainingStats,
    split: dict[str, Any],
    test_metrics: dict[str, float] | None,
) -> ModelBundle:
    """The bundle of the best epoch, carrying its validation and test metrics and the split.

    The bundle records the bands by name and the layers that give them, so that evaluation and
    mapping derive them as training did.
    """
    stats.check(config)
    layers = stats.layer_stack()
    model = build_model(
        config.arch,
        in_channels=len(layers),
        base_width=config.base_width,
        depth=config.depth,
        dropout=config.dropout,
    )
    model.load_state_dict(state.best_weights)
    metrics = {
        "best_epoch": state.best_epoch,
        "epochs": state.epoch,
        "loss": config.loss,
        "val": best_val_metrics(state),
        "test": test_metrics,
        "split": split,
    }
    return ModelBundle.from_model(
        model,
        bands=list(layers.names),
        terrain=terrain_params(layers),
        layers=layers.record(),
        norm_mean=stats.mean,
        norm_std=stats.std,
        tile_size=config.size,
        resolution_m=config.resolution_m,
        threshold=config.threshold,
        metrics=json_ready(metrics),
    )


def metrics_document(
    config: TrainConfig,
    state: TrainState,
    stats: TrainingStats,
    split: dict[str, Any],
    counts: dict[str, int],
    test_metrics: dict[str, float] | None,
) -> dict[str, Any]:
    """The content of ``metrics.json``."""
    return json_ready(
        {
            "config": config.to_dict(),
            "split": {**split, "counts": counts},
            "normalization": {"bands": list(stats.bands), "mean": stats.mean, "std": stats.std},
            "positive_fraction": stats.positive_fraction,
            "history": state.history,
            "best_epoch": state.best_epoch,
            "best_val": best_val_metrics(state),
            "test": test_metrics,
        }
    )


def loss_curve_png(history: list[dict[str, Any]], best_epoch: int, title: str) -> bytes:
    """Training and validation loss per epoch as a PNG (cf. Fig. 4 of the paper)."""
    from matplotlib.figure import Figure

    epochs = [e["epoch"] for e in history]
    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.subplots()
    axes.plot(epochs, [e["train_loss"] for e in history], marker="o", label="training loss")
    axes.plot(epochs, [e["val_loss"] for e in history], marker="o", label="validation loss")
    axes.axvline(
        best_epoch, color="grey", linestyle=":", label=f"best val mIoU (epoch {best_epoch})"
    )
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_outputs(
    config: TrainConfig,
    state: TrainState,
    bundle: ModelBundle,
    metrics: dict[str, Any],
) -> dict[str, str]:
    """Write the bundle, ``metrics.json`` and ``loss_curve.png`` under ``config.out``."""
    paths = {
        "bundle": save_bundle(bundle, config.out),
        "metrics": storage.join(config.out, METRICS_NAME),
        "loss_curve": storage.join(config.out, LOSS_CURVE_NAME),
    }
    storage.write_json(paths["metrics"], metrics)
    title = f"{config.arch} / {config.loss}"
    storage.write_bytes(paths["loss_curve"], loss_curve_png(state.history, state.best_epoch, title))
    return paths
