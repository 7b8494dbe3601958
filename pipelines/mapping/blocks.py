"""Blocks of a region for the passes over a finished map (exports, scan comparisons): one Ray
task per block, so no pass over a country-sized store runs on one node.

A block holds whole chunks, at most :data:`BLOCK` px a side. Each pass assembles its blocks'
results in block order, so what it writes does not depend on how many blocks there were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from pipelines.raster import Grid

BLOCK = 32768
"""Largest side of a block, in pixels (rounded down to whole chunks): a region larger than this
is read by parallel Ray tasks, and a block's COG stages at most 1 GiB of uint8 on its node."""
T = TypeVar("T")


def region_blocks(grid: Grid, chunk: int, block: int = BLOCK) -> list[tuple[int, int, Grid]]:
    """The blocks of ``grid``, row by row: ``(row, col, block grid)``, whole chunks of ``chunk``
    px, at most ``block`` px a side (at least one chunk)."""
    side = max(chunk, block // chunk * chunk)
    return [
        (row, col, grid.window(row, col, min(side, grid.height - row), min(side, grid.width - col)))
        for row in range(0, grid.height, side)
        for col in range(0, grid.width, side)
    ]


def for_each_block(task: Callable[..., T], blocks: list[tuple[int, int, Grid]], *args) -> list[T]:
    """``task(block grid, row, col, *args)`` for each block, results in block order: in this
    process for a single block, else as parallel Ray tasks across the cluster."""
    if len(blocks) == 1:
        row, col, block_grid = blocks[0]
        return [task(block_grid, row, col, *args)]
    import ray

    from pipelines.ray_runtime import init_ray

    init_ray()
    remote = ray.remote(num_cpus=1)(task)
    return ray.get([remote.remote(block_grid, row, col, *args) for row, col, block_grid in blocks])


def in_chunk_order(per_block: Iterable[Iterable[tuple[tuple[int, int], T]]]) -> list[T]:
    """Per-chunk results of all blocks, each keyed by its chunk's top-left pixel, in the order one
    pass over the region visits the chunks (row by row): merges that depend on the order of their
    input then give the same result however many blocks there were."""
    keyed = sorted((item for block in per_block for item in block), key=lambda item: item[0])
    return [value for _, value in keyed]
