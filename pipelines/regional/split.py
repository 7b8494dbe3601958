"""Spatial train/validation/test split of a region by blocks, with a buffer against leakage.

Neighbouring pixels are alike, so a random split of windows leaks: a model is tested on ground
it trained beside. The region's grid is cut into square blocks of ``block_m`` metres; each block
goes to one split, dealt from a seeded shuffle. A training window may not come within
``buffer_m`` of a validation or test block, and evaluation scores only the pixels of its own
blocks. With ``folds`` the blocks are dealt into that many folds: fold ``fold`` is the test set,
a ``val_fraction`` of the other blocks validates, and ``lsmap cv`` runs every fold.

How blocks become folds is the ``partition``: ``blocks`` deals them from a seeded shuffle;
``kmeans`` groups them into ``folds`` contiguous clusters by k-means of their centres (seeded),
so a test fold is one compact part of the region, as spatial CV with coordinate clusters does;
``random`` is the contrast that shows what spatial CV guards against: every pixel is its own
block, dealt at random, with no buffer. Its training windows then hold test pixels (only
training pixels count in the loss), so the model is tested beside ground it trained on.

The split is a pure function of the grid and :class:`SplitSpec`, recorded in the bundle, so that
``lsmap evaluate --split test`` scores exactly the blocks training held out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipelines.errors import InputError
from pipelines.raster import Grid

SPLITS = ("train", "val", "test")
TRAIN, VAL, TEST = 0, 1, 2
PARTITIONS = ("blocks", "kmeans", "random")


@dataclass(frozen=True)
class SplitSpec:
    """How a region is split: block side and buffer (m), shares, seed, optional folds and how
    blocks are dealt into them (``partition``). A ``test_fraction`` of 0 holds out no test
    blocks: the final model of a cross-validated choice trains on all but validation."""

    block_m: float = 512.0
    buffer_m: float = 64.0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    folds: int | None = None
    fold: int | None = None
    partition: str = "blocks"

    def __post_init__(self) -> None:
        if self.partition not in PARTITIONS:
            raise InputError(
                f"unknown partition {self.partition!r}; choose one of {', '.join(PARTITIONS)}"
            )
        if self.partition != "blocks" and self.folds is None:
            raise InputError(f"the {self.partition} partition deals folds: give folds and fold")
        if not (self.block_m > 0 and self.buffer_m >= 0):
            raise InputError(
                f"split blocks need block_m > 0 and buffer_m >= 0, got {self.block_m}, "
                f"{self.buffer_m}"
            )
        if self.folds is None:
            if not (
                0 < self.val_fraction < 1
                and 0 <= self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1
            ):
                raise InputError(
                    f"val_fraction {self.val_fraction} must be in (0, 1) and test_fraction "
                    f"{self.test_fraction} in [0, 1), leaving blocks to train on"
                )
            if self.fold is not None:
                raise InputError("fold needs folds (the number of folds)")
        else:
            if self.folds < 2 or self.fold is None or not 0 <= self.fold < self.folds:
                raise InputError(
                    f"spatial k-fold needs folds >= 2 and 0 <= fold < folds, got folds "
                    f"{self.folds}, fold {self.fold}"
                )
            if not 0 < self.val_fraction < 1:
                raise InputError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def record(self) -> dict[str, Any]:
        """The spec as JSON values (what a bundle stores)."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SplitSpec:
        return cls(**record)

    @property
    def random(self) -> bool:
        return self.partition == "random"


@dataclass(frozen=True)
class SpatialSplit:
    """The blocks of one grid and the split each belongs to (:data:`TRAIN`, :data:`VAL`,
    :data:`TEST`), ``blocks[block_row, block_col]``; ``block`` and ``buffer`` in pixels."""

    grid: Grid
    spec: SplitSpec
    block: int
    buffer: int
    blocks: np.ndarray

    @classmethod
    def of(cls, grid: Grid, spec: SplitSpec) -> SpatialSplit:
        """Deal ``grid``'s blocks into splits (deterministic in ``spec``)."""
        from pipelines.vectors import pixel_sizes

        pixel = min(pixel_sizes(grid))
        block = 1 if spec.random else max(1, round(spec.block_m / pixel))
        buffer = 0 if spec.random else math.ceil(spec.buffer_m / pixel)
        rows, cols = math.ceil(grid.height / block), math.ceil(grid.width / block)
        rng = np.random.default_rng([spec.seed, 20])
        if spec.folds is None:
            order = rng.permutation(rows * cols)
            splits = np.full(rows * cols, TRAIN, np.uint8)
            n_test = round(spec.test_fraction * rows * cols)
            n_test = max(1, n_test) if spec.test_fraction > 0 else 0
            n_val = max(1, round(spec.val_fraction * rows * cols))
            splits[order[:n_test]] = TEST
            splits[order[n_test : n_test + n_val]] = VAL
        else:
            splits = _fold_splits(spec, rng, rows, cols)
        if np.count_nonzero(splits == TRAIN) == 0:
            raise InputError(
                f"the region has {rows * cols} block(s) of {spec.block_m:g} m: too few to split; "
                "use smaller blocks (block_m) or a larger region"
            )
        return cls(grid, spec, block, buffer, splits.reshape(rows, cols))

    def allows(self, split: int, row: int, col: int, height: int, width: int) -> bool:
        """Whether the window ``(row, col, height, width)`` of the grid may be used for ``split``:
        a training window comes no nearer than the buffer to any other block; a validation or
        test window lies in blocks of its own split only. With the random partition any window
        holding a pixel of ``split`` may (the pixels of other splits do not count in it)."""
        if self.spec.random:
            return bool(self.mask(split, row, col, height, width).any())
        margin = self.buffer if split == TRAIN else 0
        top, left = row - margin, col - margin
        bottom, right = row + height + margin, col + width + margin
        rows, cols = self.blocks.shape
        first_row, first_col = max(0, top // self.block), max(0, left // self.block)
        last_row = min(rows - 1, (bottom - 1) // self.block)
        last_col = min(cols - 1, (right - 1) // self.block)
        touched = self.blocks[first_row : last_row + 1, first_col : last_col + 1]
        return bool(touched.size) and bool((touched == split).all())

    def mask(self, split: int, row: int, col: int, height: int, width: int) -> np.ndarray:
        """``bool (height, width)``: the window's pixels that lie in blocks of ``split`` (what
        evaluation scores)."""
        rows = np.clip((row + np.arange(height)) // self.block, 0, self.blocks.shape[0] - 1)
        cols = np.clip((col + np.arange(width)) // self.block, 0, self.blocks.shape[1] - 1)
        return self.blocks[rows[:, None], cols[None, :]] == split

    def record(self) -> dict[str, Any]:
        """The spec and the grid it split, as JSON values: what a bundle stores."""
        return {"spec": self.spec.record(), "grid": grid_record(self.grid)}

    def counts(self) -> dict[str, int]:
        """Blocks per split, by name."""
        return {name: int(np.count_nonzero(self.blocks == k)) for k, name in enumerate(SPLITS)}


def _fold_splits(spec: SplitSpec, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """``uint8 (rows * cols)``: each block's split when fold ``spec.fold`` of ``spec.folds`` is
    the test set and a ``val_fraction`` of the others (drawn at random) validates."""
    count = rows * cols
    if spec.random:
        folds = rng.integers(0, spec.folds, count, dtype=np.uint8)
        validates = rng.random(count, dtype=np.float32) < spec.val_fraction
    elif spec.partition == "kmeans":
        folds = _kmeans_folds(spec, rows, cols)
        validates = np.zeros(count, bool)
        rest = np.flatnonzero(folds != spec.fold)
        validates[rng.permutation(rest)[: max(1, round(spec.val_fraction * len(rest)))]] = True
    else:
        order = rng.permutation(count)
        folds = np.empty(count, np.int64)
        folds[order] = np.arange(count) % spec.folds  # dealt round the shuffled blocks
        validates = np.zeros(count, bool)
        rest = order[folds[order] != spec.fold]
        validates[rest[: max(1, round(spec.val_fraction * len(rest)))]] = True
    splits = np.full(count, TRAIN, np.uint8)
    splits[validates] = VAL
    splits[folds == spec.fold] = TEST
    return splits


def _kmeans_folds(spec: SplitSpec, rows: int, cols: int) -> np.ndarray:
    """Each block's fold: its cluster among ``spec.folds`` k-means clusters of block centres
    (seeded), clusters numbered by their centre (row, then column) so the folds do not depend on
    the order k-means found them in."""
    from scipy.cluster.vq import kmeans2

    if rows * cols < spec.folds:
        raise InputError(
            f"the region has {rows * cols} block(s) of {spec.block_m:g} m, fewer than the "
            f"{spec.folds} folds; use smaller blocks (block_m) or fewer folds"
        )
    centres = np.stack(np.divmod(np.arange(rows * cols), cols), axis=1).astype(np.float64)
    means, labels = kmeans2(centres, spec.folds, minit="++", rng=spec.seed)
    order = np.lexsort((means[:, 1], means[:, 0]))
    return np.argsort(order)[labels]


def grid_record(grid: Grid) -> dict[str, Any]:
    """A grid as JSON values (CRS as WKT), to compare a region bound again with the one split."""
    return {
        "crs": grid.crs.to_wkt(),
        "transform": [float(v) for v in list(grid.transform)[:6]],
        "width": grid.width,
        "height": grid.height,
    }
