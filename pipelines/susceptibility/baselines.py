"""Per-pixel baselines of the field: logistic regression (its GLM) and a random forest, fitted on
the same layers at the same labelled pixels the networks train on, scored on the same pixels.

A baseline sees a pixel's layer values and nothing around it; a network sees the window. The
difference between their cross-validated AUROCs is what the context is worth on a region.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.regional.sampling import WindowSampler
from pipelines.regional.split import TRAIN, SpatialSplit
from pipelines.regional.windows import RegionSource

BASELINES = ("logistic", "forest")
# Training pixels a baseline fits on at most (drawn evenly from the training windows' labelled
# pixels): a logistic regression or a forest learns nothing more from a million alike pixels.
MAX_PIXELS = 50_000


def build_baseline(name: str, seed: int) -> Any:
    """An unfitted scikit-learn classifier: ``logistic`` (standardised features, balanced
    classes) or ``forest`` (200 trees, balanced per tree)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logistic":
        return make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced")
        )
    if name == "forest":
        return RandomForestClassifier(
            n_estimators=200,
            min_samples_leaf=5,
            class_weight="balanced_subsample",
            n_jobs=1,
            random_state=seed,
        )
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")


def training_pixels(
    source: RegionSource, sampler: WindowSampler, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(features (N, bands), labels (N,))``: the labelled training pixels with data of the
    first epoch's training windows (each pixel once), at most :data:`MAX_PIXELS` of them."""
    split, size = sampler.split, sampler.size
    seen: set[tuple[int, int]] = set()
    features, labels = [], []
    for top, left in sampler.train_windows(1):
        if (int(top), int(left)) in seen:
            continue
        seen.add((int(top), int(left)))
        window = source.read(int(top), int(left), size)
        counted = _counted(window, split, TRAIN, int(top), int(left), size)
        features.append(window.image[:, counted].T)
        labels.append(window.landslide[counted])
    x = np.concatenate(features) if features else np.empty((0, 0))
    y = np.concatenate(labels) if labels else np.empty(0)
    # Overlapping windows hold some pixels twice; the cap keeps a seeded, even draw of them.
    if len(y) > MAX_PIXELS:
        keep = np.sort(np.random.default_rng([seed, 23]).choice(len(y), MAX_PIXELS, replace=False))
        x, y = x[keep], y[keep]
    return x.astype(np.float64), y.astype(np.int64)


def _counted(
    window: Any, split: SpatialSplit, which: int, top: int, left: int, size: int
) -> np.ndarray:
    data = np.isfinite(window.image).all(axis=0)
    return window.valid & data & split.mask(which, top, left, size, size)


def pixel_predictor(model: Any):
    """``windows -> probabilities (N, size, size)`` of a fitted per-pixel classifier, one call
    for the whole batch; pixels without data get 0 (no pixel without data is scored)."""

    def predict(windows: list[Any]) -> np.ndarray:
        images = np.stack([window.image for window in windows])  # (N, bands, H, W)
        values = images.transpose(0, 2, 3, 1).reshape(-1, images.shape[1])
        data = np.isfinite(values).all(axis=1)
        probability = np.zeros(len(values))
        if data.any():
            probability[data] = model.predict_proba(values[data])[:, 1]
        return probability.reshape(images.shape[0], *images.shape[2:])

    return predict
