"""Spatial train/validation/test split of a region by blocks, with a buffer against leakage.

Neighbouring pixels are alike, so a random split of windows leaks: a model is tested on ground
it trained beside. The region's grid is cut into square blocks of ``block_m`` metres; each block
goes to one split, dealt from a seeded shuffle. A training window may not come within
``buffer_m`` of a validation or test block, and evaluation scores only the pixels of its own
blocks. With ``folds`` the blocks are dealt into that many folds: fold ``fold`` is the test set,
a ``val_fraction`` of the other blocks validates, and ``lsmap cv`` runs every fold.

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


@dataclass(frozen=True)
class SplitSpec:
    """How a region is split: block side and buffer (m), shares, seed, and optional folds."""

    block_m: float = 512.0
    buffer_m: float = 64.0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    folds: int | None = None
    fold: int | None = None

    def __post_init__(self) -> None:
        if not (self.block_m > 0 and self.buffer_m >= 0):
            raise InputError(
                f"split blocks need block_m > 0 and buffer_m >= 0, got {self.block_m}, "
                f"{self.buffer_m}"
            )
        if self.folds is None:
            shares = (self.val_fraction, self.test_fraction)
            if not (all(0 < s < 1 for s in shares) and sum(shares) < 1):
                raise InputError(
                    f"val_fraction {self.val_fraction} and test_fraction {self.test_fraction} "
                    "must each be in (0, 1) and leave blocks to train on"
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
        block = max(1, round(spec.block_m / pixel))
        buffer = math.ceil(spec.buffer_m / pixel)
        rows, cols = math.ceil(grid.height / block), math.ceil(grid.width / block)
        order = np.random.default_rng([spec.seed, 20]).permutation(rows * cols)
        splits = np.full(rows * cols, TRAIN, np.uint8)
        if spec.folds is None:
            n_test = max(1, round(spec.test_fraction * rows * cols))
            n_val = max(1, round(spec.val_fraction * rows * cols))
            splits[order[:n_test]] = TEST
            splits[order[n_test : n_test + n_val]] = VAL
        else:
            folds = np.arange(rows * cols) % spec.folds  # dealt round the shuffled blocks
            test = order[folds == spec.fold]
            rest = order[folds != spec.fold]
            splits[test] = TEST
            splits[rest[: max(1, round(spec.val_fraction * len(rest)))]] = VAL
        if np.count_nonzero(splits == TRAIN) == 0:
            raise InputError(
                f"the region has {rows * cols} block(s) of {spec.block_m:g} m: too few to split; "
                "use smaller blocks (block_m) or a larger region"
            )
        return cls(grid, spec, block, buffer, splits.reshape(rows, cols))

    def allows(self, split: int, row: int, col: int, height: int, width: int) -> bool:
        """Whether the window ``(row, col, height, width)`` of the grid may be used for ``split``:
        a training window comes no nearer than the buffer to any other block; a validation or
        test window lies in blocks of its own split only."""
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


def grid_record(grid: Grid) -> dict[str, Any]:
    """A grid as JSON values (CRS as WKT), to compare a region bound again with the one split."""
    return {
        "crs": grid.crs.to_wkt(),
        "transform": [float(v) for v in list(grid.transform)[:6]],
        "width": grid.width,
        "height": grid.height,
    }
