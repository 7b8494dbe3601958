"""Coordinate-pure random fields: hashed lattices, gradient noise and lattice interpolation.

Every value here depends only on ``(seed, layer, coordinates)``, never on the array it is computed
in, so any window of the world can be generated on its own and windows join exactly. That rules
out reductions across pixels and vectorised transcendental functions (NumPy may evaluate those
with different SIMD paths for different array lengths): fields use arithmetic and square roots.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import numpy as np

TABLE_SIZE = 1 << 16  # lattice period in cells: 65 km at 1 m, far beyond any region we render
_MASK = TABLE_SIZE - 1

NodeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Values at integer lattice nodes ``(ix, iy)`` (broadcastable int64 arrays) -> float32."""


class Tables(NamedTuple):
    perm: np.ndarray  # int64 permutation of 0..TABLE_SIZE-1
    grad_x: np.ndarray  # float32 unit gradient directions
    grad_y: np.ndarray
    value: np.ndarray  # float32 uniform values in [0, 1)


@lru_cache(maxsize=256)
def tables(seed: int, layer: int) -> Tables:
    """The hash tables of one layer of one world (cached; a few hundred KiB each)."""
    rng = np.random.default_rng([seed, layer])
    angle = rng.uniform(0.0, 2.0 * np.pi, TABLE_SIZE)
    return Tables(
        perm=rng.permutation(TABLE_SIZE).astype(np.int64),
        grad_x=np.cos(angle).astype(np.float32),
        grad_y=np.sin(angle).astype(np.float32),
        value=rng.random(TABLE_SIZE, dtype=np.float32),
    )


def _hash(t: Tables, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    # Perlin's permutation hash; with broadcast (1, W) / (H, 1) inputs the inner lookup stays 1-D.
    return t.perm[(t.perm[ix & _MASK] + (iy & _MASK)) & _MASK]


def white(seed: int, layer: int, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Independent uniform [0, 1) values at integer positions (float32)."""
    t = tables(seed, layer)
    return t.value[_hash(t, ix, iy)]


def _fade(f: np.ndarray) -> np.ndarray:
    return f * f * f * (f * (f * 6.0 - 15.0) + 10.0)


def gradient(seed: int, layer: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Perlin gradient noise with unit lattice at float64 coordinates; float32, about +-0.7."""
    t = tables(seed, layer)
    fx0, fy0 = np.floor(x), np.floor(y)
    ix, iy = fx0.astype(np.int64), fy0.astype(np.int64)
    fx, fy = (x - fx0).astype(np.float32), (y - fy0).astype(np.float32)

    def corner(dx: int, dy: int) -> np.ndarray:
        h = _hash(t, ix + dx, iy + dy)
        return t.grad_x[h] * (fx - dx) + t.grad_y[h] * (fy - dy)

    sx, sy = _fade(fx), _fade(fy)
    n00, n10, n01, n11 = corner(0, 0), corner(1, 0), corner(0, 1), corner(1, 1)
    bottom = n00 + sx * (n10 - n00)
    top = n01 + sx * (n11 - n01)
    return bottom + sy * (top - bottom)


def fbm(
    seed: int,
    layer: int,
    x: np.ndarray,
    y: np.ndarray,
    wavelengths: tuple[float, ...],
    weights: tuple[float, ...],
    ridged: bool = False,
) -> np.ndarray:
    """Weighted sum of gradient-noise octaves (one hash layer each) at map coordinates (m).

    ``ridged`` folds each octave into ``1 - |n| / 0.7`` (sharp crests where the noise crosses 0),
    clipped to [0, 1]; the sum is then divided by the total weight, so it also lies in [0, 1].
    """
    total = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)), np.float32)
    for octave, (wavelength, weight) in enumerate(zip(wavelengths, weights, strict=True)):
        n = gradient(seed, layer * 16 + octave, x / wavelength, y / wavelength)
        if ridged:
            n = np.clip(1.0 - np.abs(n) / 0.7, 0.0, 1.0)
        total += np.float32(weight) * n
    if ridged:
        total /= np.float32(sum(weights))
    return total


def _weights(frac: np.ndarray, cubic: bool) -> tuple[int, list[np.ndarray]]:
    """First node offset and per-node weights for interpolation at fractional positions."""
    f = frac.astype(np.float32)
    if not cubic:
        return 0, [1.0 - f, f]
    # Catmull-Rom: C1-continuous, so slopes computed from the field have no lattice seams.
    f2, f3 = f * f, f * f * f
    return -1, [
        0.5 * (-f3 + 2.0 * f2 - f),
        0.5 * (3.0 * f3 - 5.0 * f2 + 2.0),
        0.5 * (-3.0 * f3 + 4.0 * f2 + f),
        0.5 * (f3 - f2),
    ]


_MAX_BOX_NODES = 4_000_000  # above this a point set is too scattered for one node box


def lattice(
    node_fn: NodeFn, spacing: float, x: np.ndarray, y: np.ndarray, cubic: bool = True
) -> np.ndarray:
    """Interpolate node values ``node_fn(ix, iy)`` (nodes every ``spacing`` m) at map coordinates.

    ``x`` of shape (1, W) with ``y`` of shape (H, 1) is a grid and is interpolated separably;
    equal-shaped ``x`` and ``y`` are scattered points. Both paths do the same arithmetic in the
    same order, so a point gets the same float32 value either way.
    """
    u, v = x / spacing, y / spacing
    u0, v0 = np.floor(u), np.floor(v)
    ix, iy = u0.astype(np.int64), v0.astype(np.int64)
    offset, wx = _weights(u - u0, cubic)
    _, wy = _weights(v - v0, cubic)
    reach = len(wx) - 1 + offset

    grid = x.ndim == 2 and y.ndim == 2 and x.shape[0] == 1 and y.shape[1] == 1
    if ix.size == 0 or iy.size == 0:
        return np.zeros(np.broadcast_shapes(x.shape, y.shape), np.float32)
    x_lo, x_hi = int(ix.min()) + offset, int(ix.max()) + reach
    y_lo, y_hi = int(iy.min()) + offset, int(iy.max()) + reach
    box = (x_hi - x_lo + 1) * (y_hi - y_lo + 1)
    if grid or box <= max(_MAX_BOX_NODES, 16 * ix.size):
        nodes = node_fn(
            np.arange(x_lo, x_hi + 1, dtype=np.int64)[None, :],
            np.arange(y_lo, y_hi + 1, dtype=np.int64)[:, None],
        )

        def node(dx: int, dy: int) -> np.ndarray:
            return nodes[iy + dy - y_lo, ix + dx - x_lo]
    else:

        def node(dx: int, dy: int) -> np.ndarray:
            return node_fn(ix + dx, iy + dy)

    if grid:
        # Rows of nodes interpolated along x once, then gathered per pixel row.
        rows = None
        for j, w in enumerate(wx):
            term = w * nodes[:, ix[0] + offset + j - x_lo]
            rows = term if rows is None else rows + term
        out = None
        for k, w in enumerate(wy):
            term = w * rows[iy[:, 0] + offset + k - y_lo]
            out = term if out is None else out + term
        return out

    out = None
    for k, w_k in enumerate(wy):
        along = None
        for j, w_j in enumerate(wx):
            term = w_j * node(offset + j, offset + k)
            along = term if along is None else along + term
        term = w_k * along
        out = term if out is None else out + term
    return out


def value_noise(seed: int, layer: int, spacing: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Smooth uniform-ish noise in about [0, 1]: hashed node values, cubic-interpolated."""
    return lattice(lambda ix, iy: white(seed, layer, ix, iy), spacing, x, y)


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def cell_uniforms(seed: int, layer: int, cx: np.ndarray, cy: np.ndarray, count: int) -> np.ndarray:
    """``count`` independent uniforms in [0, 1) per cell ``(cx, cy)``: shape (len(cx), count)."""
    key = _splitmix(np.full(cx.shape, seed * 1_000_003 + layer, dtype=np.uint64))
    key = _splitmix(key ^ cx.astype(np.int64).astype(np.uint64))
    key = _splitmix(key ^ cy.astype(np.int64).astype(np.uint64))
    bits = _splitmix(key[:, None] + np.arange(count, dtype=np.uint64)[None, :])
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
