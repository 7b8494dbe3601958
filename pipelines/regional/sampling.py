"""Which windows of a region a model trains and is evaluated on.

Training windows are drawn afresh each epoch from a generator seeded by ``(seed, epoch)``, so
the same seed gives the same samples on any machine and worker count:

- around each anchor, a window of the model's size placed with a uniform jitter of up to
  ``jitter`` of its side, so a landslide is not always at the centre. Anchors are a point in
  each presence of a complete polygon inventory, and in every feature, presence or absence, of
  any other (its labels exist only there);
- for a complete polygon inventory, ``negatives`` windows per positive one placed uniformly over
  the region (its background is known everywhere).

An epoch holds a window per anchor (and its negatives), or ``length`` windows in all: anchors
then take turns, each as often as the others give or take one, as torchgeo's samplers take a
``length``.

Only windows the spatial split allows for training are kept. Evaluation windows tile the
region; each scores the pixels of its split's blocks only (:meth:`SpatialSplit.mask`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.inventory import Inventory
from pipelines.regional.split import TRAIN, SpatialSplit

_TRIES = 4  # placements tried per anchor before it sits this epoch out


@dataclass(frozen=True)
class WindowSampler:
    """Windows of ``size`` px of a split region with its inventory (in the grid's CRS)."""

    split: SpatialSplit
    inventory: Inventory
    size: int
    negatives: float = 1.0
    jitter: float = 0.25
    seed: int = 0
    length: int | None = None

    def anchors(self) -> np.ndarray:
        """``int (N, 2)``: the anchors' grid pixels ``(row, col)``, in inventory order."""
        frame = self.inventory.frame
        if self.inventory.complete:  # its background comes from the negative windows
            frame = frame[frame["landslide"].to_numpy(bool)]
        points = frame.geometry.representative_point()
        rows, cols = self.split.grid.pixels(points.x.to_numpy(), points.y.to_numpy())
        return np.stack([rows, cols], axis=1)

    def reach_landslides(self, windows: np.ndarray) -> bool:
        """Whether any of ``windows`` (top-left pixels) holds a presence's anchor pixel."""
        frame = self.inventory.frame
        points = frame[frame["landslide"].to_numpy(bool)].geometry.representative_point()
        rows, cols = self.split.grid.pixels(points.x.to_numpy(), points.y.to_numpy())
        tops, lefts = windows[:, :1], windows[:, 1:]
        inside = (rows >= tops) & (rows < tops + self.size) & (cols >= lefts)
        return bool((inside & (cols < lefts + self.size)).any())

    def train_windows(self, epoch: int) -> np.ndarray:
        """``int (N, 2)``: top-left pixels of this epoch's training windows, shuffled."""
        rng = np.random.default_rng([self.seed, epoch, 21])
        grid, size = self.split.grid, self.size
        if grid.height < size or grid.width < size:
            return np.empty((0, 2), np.int64)
        reach = int(self.jitter * size)
        anchors = self.anchors()
        if not self.split.spec.random:
            # Anchors in held-out blocks never get a training window: leave them out, so that
            # every turn of a ``length`` epoch goes to one that can.
            anchors = anchors[self._in_training_blocks(anchors)]
        negative_share = self.negatives / (1 + self.negatives) if self.inventory.complete else 0
        if self.length is not None and len(anchors):
            turns = round(self.length * (1 - negative_share))
            anchors = anchors[np.resize(rng.permutation(len(anchors)), turns)]
        windows = []
        for row, col in anchors:
            for _ in range(_TRIES):
                shift = rng.integers(-reach, reach + 1, 2)
                top = int(np.clip(row - size // 2 + shift[0], 0, grid.height - size))
                left = int(np.clip(col - size // 2 + shift[1], 0, grid.width - size))
                if self.split.allows(TRAIN, top, left, size, size):
                    windows.append((top, left))
                    break
        if self.inventory.complete:
            wanted = round(self.negatives * len(windows))
            if self.length is not None:
                wanted = self.length - len(windows)
            for _ in range(20 * wanted):
                if wanted == 0:
                    break
                top = int(rng.integers(0, grid.height - size + 1))
                left = int(rng.integers(0, grid.width - size + 1))
                if self.split.allows(TRAIN, top, left, size, size):
                    windows.append((top, left))
                    wanted -= 1
        windows = np.asarray(windows, np.int64).reshape(-1, 2)
        return windows[rng.permutation(len(windows))]

    def _in_training_blocks(self, pixels: np.ndarray) -> np.ndarray:
        split = self.split
        rows = np.clip(pixels[:, 0] // split.block, 0, split.blocks.shape[0] - 1)
        cols = np.clip(pixels[:, 1] // split.block, 0, split.blocks.shape[1] - 1)
        return split.blocks[rows, cols] == TRAIN

    def tiles(self, split: int) -> np.ndarray:
        """``int (N, 2)``: top-left pixels of windows tiling the region (the last row and column
        flush with its edge) that hold pixels of ``split``'s blocks, in row-major order."""
        grid, size = self.split.grid, self.size
        rows = starts_along(grid.height, size)
        cols = starts_along(grid.width, size)
        return np.asarray(
            [
                (row, col)
                for row in rows
                for col in cols
                if self.split.mask(split, row, col, size, size).any()
            ],
            np.int64,
        ).reshape(-1, 2)


def starts_along(length: int, size: int) -> list[int]:
    """Tile starts along an axis of ``length`` px: every ``size`` px, the last flush with the
    end."""
    if length <= size:
        return [0]
    return sorted({*range(0, length - size, size), length - size})
