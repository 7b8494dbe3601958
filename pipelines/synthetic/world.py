"""The synthetic landslide world: terrain, land cover, confusers and landslide scars.

See :mod:`pipelines.synthetic` for the model. Coordinates are metres in the world CRS (UTM 48N,
x east, y north); a window is given by its upper-left corner, so pixel ``(i, j)`` of a window at
``(x0, y0)`` with pixel size ``p`` has its centre at ``(x0 + (j + 0.5) p, y0 - (i + 0.5) p)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from pipelines.synthetic import noise

TERRAIN_SPACING = 8.0  # m between terrain lattice nodes (cubic interpolation in between)
SLOPE_STEP = 2.0  # m, half-step of the central differences behind object slopes


class Cover(IntEnum):
    """What each pixel of a :class:`Scene` shows."""

    VEGETATION = 0
    SCAR = 1
    BARE_PATCH = 2
    BARE_FIELD = 3
    CROP_FIELD = 4
    ROAD = 5
    RIVER = 6
    ROOF = 7
    SHRUB = 8


CONFUSERS = (Cover.BARE_PATCH, Cover.BARE_FIELD, Cover.ROAD, Cover.RIVER, Cover.ROOF)
"""Covers that look like bare soil in RGB but lie on gentle ground."""


class _Layer(IntEnum):
    # One independent hash stream per ingredient, so tuning one never reshuffles another.
    REGIONAL = 1
    HILLS = 2
    VALLEYS = 3
    ROADS = 4
    COVER = 5
    HAZE = 6
    TEXTURE = 7
    GRAIN = 8
    SOIL = 9
    SCARS = 10
    PATCHES = 11
    FIELDS = 12
    FIELD_ORIENTATION = 13
    VILLAGES = 14
    LITHOLOGY = 15
    SHRUBS = 16


# Colours (RGB, 0-255 before shading and haze).
_FOREST = np.array([40.0, 68.0, 38.0], np.float32)
_GRASS = np.array([104.0, 124.0, 66.0], np.float32)
_SOIL = (158.0, 122.0, 92.0)  # Guizhou red-yellow soil
_ROAD = np.array([168.0, 150.0, 128.0], np.float32)
_GRAVEL = np.array([166.0, 152.0, 132.0], np.float32)
_WATER = np.array([72.0, 92.0, 98.0], np.float32)
_HAZE = np.array([205.0, 210.0, 220.0], np.float32)
_CROPS = ((112.0, 136.0, 66.0), (146.0, 146.0, 84.0), (92.0, 118.0, 56.0))
_ROOFS = ((196.0, 194.0, 188.0), (222.0, 216.0, 206.0), (96.0, 124.0, 160.0), (156.0, 96.0, 74.0))
_SUN = np.array([-0.5, 0.5, math.sqrt(0.5)], np.float32)  # from the north-west, 45 deg high
# Near-infrared (0-255 before shading and haze) per Cover code; vegetation is textured apart.
# Green leaves reflect near-infrared strongly; bare soil, scars and their look-alikes do not.
_NIR = np.array([0.0, 72.0, 74.0, 80.0, 176.0, 104.0, 46.0, 128.0, 184.0], np.float32)
_NIR_HAZE = 214.0

LITHOLOGY_CODES = (1, 2, 3, 4)
"""Lithology classes of the world's geological map: 1 mudstone and shale, 2 limestone,
3 sandstone, 4 coal measures."""
# The share of the slope-driven scar probability each class keeps in worlds whose scars depend
# on lithology (index = code): weak shales and coal measures slide, massive limestone rarely.
_SUSCEPTIBILITY = np.array([0.0, 1.0, 0.05, 0.3, 1.0])


def _tan(degrees: float) -> float:
    return math.tan(math.radians(degrees))


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, linear in between (``hi < lo`` gives a falling ramp)."""
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class Scene:
    """One rendered window: imagery, truth and the terrain behind them (all (H, W) or (3, H, W))."""

    rgb: np.ndarray  # uint8 (3, H, W)
    mask: np.ndarray  # uint8 (H, W), 1 on scars of events <= the scene's event
    elevation: np.ndarray  # float32 (H, W), m
    slope: np.ndarray  # float32 (H, W), degrees
    cover: np.ndarray  # uint8 (H, W), Cover codes
    nir: np.ndarray  # uint8 (H, W), near-infrared
    lithology: np.ndarray  # uint8 (H, W), LITHOLOGY_CODES


@dataclass(frozen=True)
class Scars:
    """Landslide scars as arrays: centre (m), length along the slope (m), event index."""

    x: np.ndarray
    y: np.ndarray
    length: np.ndarray
    event: np.ndarray


@dataclass(frozen=True)
class ScarOutline:
    """One scar as an inventory records it: a stable id, its event, its outline (``(N, 2)`` map
    coordinates, closed ring without the repeated first vertex) and its head, the upslope end
    where it started (m)."""

    id: str
    event: int
    outline: np.ndarray
    head: tuple[float, float]


@dataclass(frozen=True)
class _Shape:
    cover: Cover
    x: float
    y: float
    cos: float  # unit vector of the long axis (downslope for scars)
    sin: float
    half_length: float
    half_width: float
    colour: tuple[float, float, float]
    rect: bool = False
    taper: float = 0.0  # width change along the axis: teardrop shapes
    lobes: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # cos/sin 2- and 3-fold
    event: int = 0

    @property
    def reach(self) -> float:
        """Radius of a circle that contains the shape."""
        if self.rect:
            return math.hypot(self.half_length, self.half_width)
        wobble = 1.0 + sum(abs(c) for c in self.lobes)
        return max(self.half_length, self.half_width * (1.0 + abs(self.taper))) * wobble


@dataclass(frozen=True)
class World:
    """A deterministic synthetic landslide world, a pure function of ``seed`` and map coordinates.

    Options, off by default so that a seed's world never changes: ``lithology_scars`` makes
    scars depend on the lithology map (:meth:`lithology`) as well as on slope;
    ``shrub_lookalikes`` adds reddish shrub patches on steep ground that look like scars in RGB
    and lie where scars do, but are bright in near-infrared.
    """

    seed: int
    lithology_scars: bool = False
    shrub_lookalikes: bool = False

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    # Terrain -----------------------------------------------------------------------------

    def _valley_noise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return noise.fbm(self.seed, _Layer.VALLEYS, x, y, (2600.0, 1100.0), (1.0, 0.35))

    def _valley_nodes(self, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        return self._valley_noise(ix * TERRAIN_SPACING, iy * TERRAIN_SPACING)

    def _road_nodes(self, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        x, y = ix * TERRAIN_SPACING, iy * TERRAIN_SPACING
        return noise.fbm(self.seed, _Layer.ROADS, x, y, (800.0, 350.0), (1.0, 0.4))

    def _terrain_nodes(self, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        x, y = ix * TERRAIN_SPACING, iy * TERRAIN_SPACING
        regional = noise.fbm(self.seed, _Layer.REGIONAL, x, y, (30000.0, 12000.0), (1.0, 0.5))
        hills = noise.fbm(self.seed, _Layer.HILLS, x, y, (900.0, 430.0), (1.0, 0.45), ridged=True)
        # Cone karst: flat basins where the ridged noise is low, steep cones and ridges above.
        relief = _smoothstep((hills - 0.75) / 0.25)
        # River corridors: flat plains, slightly sunken, along the zero lines of the valley noise.
        valley = 1.0 - _smoothstep((np.abs(self._valley_noise(x, y)) - 0.03) / 0.25)
        return 1650.0 + 60.0 * regional + 400.0 * relief * (1.0 - valley) - 30.0 * valley

    def rivers(self, left: float, bottom: float, right: float, top: float) -> list[np.ndarray]:
        """River centre lines within the bounds (m): the valley field's zero lines, along which
        :meth:`scene` paints water, traced between terrain lattice nodes, as ``(N, 2)`` arrays
        of map coordinates. Lines are cut where lattice blocks meet (blocks bound memory)."""
        import contourpy

        block = 1024  # lattice nodes a side
        first_x, last_x = math.floor(left / TERRAIN_SPACING), math.ceil(right / TERRAIN_SPACING)
        first_y, last_y = math.floor(bottom / TERRAIN_SPACING), math.ceil(top / TERRAIN_SPACING)
        lines = []
        for start_y in range(first_y, last_y, block):
            iy = np.arange(start_y, min(start_y + block, last_y) + 1)
            for start_x in range(first_x, last_x, block):
                ix = np.arange(start_x, min(start_x + block, last_x) + 1)
                field = self._valley_nodes(ix[None, :], iy[:, None])
                contours = contourpy.contour_generator(
                    ix * TERRAIN_SPACING, iy * TERRAIN_SPACING, field, line_type="Separate"
                )
                lines += [line for line in contours.lines(0.0) if len(line) > 1]
        return lines

    def elevation(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Elevation (m, float32) at map coordinates (any broadcastable shapes)."""
        x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
        flat = noise.lattice(self._terrain_nodes, TERRAIN_SPACING, x.ravel(), y.ravel())
        return flat.reshape(x.shape)

    def _gradient_at(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = SLOPE_STEP
        e = self.elevation(
            np.concatenate([x + h, x - h, x, x]), np.concatenate([y, y, y + h, y - h])
        )
        east, west, north, south = np.split(e, 4)
        return (east - west) / (2.0 * h), (north - south) / (2.0 * h)

    # Objects -----------------------------------------------------------------------------

    def _candidates(
        self, layer: _Layer, cell: float, bounds: tuple[float, float, float, float], count: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One candidate per ``cell``-sized square near ``bounds``: centres and uniforms.

        Cells one beyond the bounds are included so that shapes reaching in from neighbouring
        windows are drawn too (every shape is smaller than its cell).
        """
        x_min, y_min, x_max, y_max = bounds
        cx = np.arange(math.floor(x_min / cell) - 1, math.floor(x_max / cell) + 2)
        cy = np.arange(math.floor(y_min / cell) - 1, math.floor(y_max / cell) + 2)
        cy, cx = (a.ravel() for a in np.meshgrid(cy, cx, indexing="ij"))
        u = noise.cell_uniforms(self.seed, layer, cx, cy, count + 2)
        return (cx + u[:, 0]) * cell, (cy + u[:, 1]) * cell, u[:, 2:]

    def _blobs(
        self,
        cover: Cover,
        layer: _Layer,
        cell: float,
        bounds: tuple[float, float, float, float],
        accept: tuple[float, float, float],
        weight: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> list[_Shape]:
        """Bare-soil teardrops along the slope; ``accept``: (probability, slope ramp lo, hi),
        times ``weight(x, y)`` of the candidate's centre when given."""
        x, y, u = self._candidates(layer, cell, bounds, 13)
        gx, gy = self._gradient_at(x, y)
        slope = np.sqrt(gx * gx + gy * gy)
        p, lo, hi = accept
        chance = p * _ramp(slope, _tan(lo), _tan(hi))
        if weight is not None:
            chance = chance * weight(x, y)
        keep = u[:, 0] < chance
        shapes = []
        for i in np.flatnonzero(keep):
            v = [float(a) for a in u[i]]
            norm = max(float(slope[i]), 1e-9)
            length = 5.0 * 12.0 ** math.sqrt(v[1])  # 5-60 m, median 29 m
            half_width = max(0.5 * length * (0.25 + 0.35 * v[2]), 1.5)
            bright, red = 0.85 + 0.3 * v[4], 24.0 * (v[5] - 0.5)
            a2, a3 = 0.12 * v[6], 0.08 * v[8]
            p2, p3 = 2.0 * math.pi * v[7], 2.0 * math.pi * v[9]
            shapes.append(
                _Shape(
                    cover=cover,
                    x=float(x[i]),
                    y=float(y[i]),
                    cos=-float(gx[i]) / norm if slope[i] > 0 else 1.0,
                    sin=-float(gy[i]) / norm if slope[i] > 0 else 0.0,
                    half_length=0.5 * length,
                    half_width=half_width,
                    colour=(_SOIL[0] * bright + red, _SOIL[1] * bright, _SOIL[2] * bright - red),
                    taper=0.8 * (v[3] - 0.5),
                    lobes=(
                        a2 * math.cos(p2),
                        a2 * math.sin(p2),
                        a3 * math.cos(p3),
                        a3 * math.sin(p3),
                    ),
                    # Geometric event index: half of all scars exist before event 1, and so on.
                    event=sum(v[10] < 0.5**k for k in range(1, 16)),
                )
            )
        return shapes

    def _scars(self, bounds: tuple[float, float, float, float]) -> list[_Shape]:
        # Landslides: one candidate per 64 m cell, likelier the steeper (none below ~22 deg).
        weight = self._susceptibility if self.lithology_scars else None
        return self._blobs(Cover.SCAR, _Layer.SCARS, 64.0, bounds, (0.9, 22.0, 36.0), weight)

    def _susceptibility(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _SUSCEPTIBILITY[self.lithology(x, y)]

    def _shrubs(self, bounds: tuple[float, float, float, float]) -> list[_Shape]:
        # Reddish shrub patches drawn like scars on the same steep ground: only near-infrared,
        # where leaves are bright, tells them apart.
        if not self.shrub_lookalikes:
            return []
        return self._blobs(Cover.SHRUB, _Layer.SHRUBS, 64.0, bounds, (0.45, 22.0, 36.0))

    def lithology(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Lithology code (:data:`LITHOLOGY_CODES`, uint8) at map coordinates: units of a few
        hundred metres to kilometres with smooth, irregular contacts."""
        field = noise.fbm(self.seed, _Layer.LITHOLOGY, x, y, (1800.0, 700.0), (1.0, 0.4))
        # The field's quartiles (measured over the chip domain): four classes of equal area.
        edges = np.array([-0.16, 0.0, 0.16], np.float32)
        return (1 + np.searchsorted(edges, field)).astype(np.uint8)

    def _patches(self, bounds: tuple[float, float, float, float]) -> list[_Shape]:
        # Look-alikes (earthworks, eroded plots): drawn like scars, but only on gentle ground.
        return self._blobs(Cover.BARE_PATCH, _Layer.PATCHES, 64.0, bounds, (0.4, 9.0, 5.0))

    def _fields(self, bounds: tuple[float, float, float, float]) -> list[_Shape]:
        x, y, u = self._candidates(_Layer.FIELDS, 40.0, bounds, 7)
        gx, gy = self._gradient_at(x, y)
        keep = u[:, 0] < 0.35 * _ramp(np.sqrt(gx * gx + gy * gy), _tan(9.0), _tan(4.0))
        # Neighbouring fields share an orientation that drifts over a few hundred metres.
        turn = noise.value_noise(self.seed, _Layer.FIELD_ORIENTATION, 400.0, x, y)
        shapes = []
        for i in np.flatnonzero(keep):
            v = [float(a) for a in u[i]]
            angle = math.pi * float(turn[i]) + 0.15 * (v[1] - 0.5)
            if v[2] < 0.35:
                cover = Cover.BARE_FIELD
                bright, red = 0.85 + 0.3 * v[3], 24.0 * (v[4] - 0.5)
                colour = (_SOIL[0] * bright + red, _SOIL[1] * bright, _SOIL[2] * bright - red)
            else:
                cover = Cover.CROP_FIELD
                colour = _CROPS[int(v[3] * len(_CROPS))]
            shapes.append(
                _Shape(
                    cover=cover,
                    x=float(x[i]),
                    y=float(y[i]),
                    cos=math.cos(angle),
                    sin=math.sin(angle),
                    half_length=10.0 + 12.0 * v[5],
                    half_width=7.0 + 8.0 * v[6],
                    colour=colour,
                    rect=True,
                )
            )
        return shapes

    def _roofs(self, bounds: tuple[float, float, float, float]) -> list[_Shape]:
        x, y, u = self._candidates(_Layer.VILLAGES, 300.0, bounds, 3)
        gx, gy = self._gradient_at(x, y)
        keep = u[:, 0] < 0.6 * _ramp(np.sqrt(gx * gx + gy * gy), _tan(8.0), _tan(4.0))
        shapes = []
        for i in np.flatnonzero(keep):
            rng = np.random.default_rng([self.seed, _Layer.VILLAGES, int(u[i, 1] * 2**53)])
            angle = math.pi * float(u[i, 2])
            for _ in range(8 + int(rng.integers(0, 24))):
                # Houses cluster around the centre (normal spread ~22 m, cut at 60 m).
                dx, dy = np.clip(rng.normal(0.0, 22.0, 2), -60.0, 60.0)
                turn = angle + rng.normal(0.0, 0.1) + (math.pi / 2 if rng.random() < 0.3 else 0.0)
                shapes.append(
                    _Shape(
                        cover=Cover.ROOF,
                        x=float(x[i] + dx),
                        y=float(y[i] + dy),
                        cos=math.cos(turn),
                        sin=math.sin(turn),
                        half_length=float(rng.uniform(3.0, 6.5)),
                        half_width=float(rng.uniform(2.5, 4.5)),
                        colour=_ROOFS[int(rng.integers(0, len(_ROOFS)))],
                        rect=True,
                    )
                )
        return shapes

    def scars(
        self, x_min: float, y_min: float, x_max: float, y_max: float, event: int = 0
    ) -> Scars:
        """Scars of events <= ``event`` whose centres lie in the given bounds (m)."""
        bounds = (x_min, y_min, x_max, y_max)
        found = [
            s
            for s in self._scars(bounds)
            if s.event <= event and x_min <= s.x < x_max and y_min <= s.y < y_max
        ]
        return Scars(
            x=np.array([s.x for s in found]),
            y=np.array([s.y for s in found]),
            length=np.array([2.0 * s.half_length for s in found]),
            event=np.array([s.event for s in found], dtype=np.int64),
        )

    def scar_outlines(
        self, x_min: float, y_min: float, x_max: float, y_max: float, event: int = 0
    ) -> list[ScarOutline]:
        """Outlines of the scars of events <= ``event`` that reach into the bounds (m): the
        boundary :meth:`scene` paints (a pixel is in the mask where its centre is inside)."""
        bounds = (x_min, y_min, x_max, y_max)
        outlines = []
        for shape in self._scars(bounds):
            r = shape.reach
            reaches = x_min - r < shape.x < x_max + r and y_min - r < shape.y < y_max + r
            if shape.event <= event and reaches:
                outline = _outline(shape)
                head = _outline(shape, np.array([math.pi]), inset=0.8)[0]
                outlines.append(
                    ScarOutline(
                        id=f"scar-{self.seed}-{shape.x:.1f}-{shape.y:.1f}",
                        event=shape.event,
                        outline=outline,
                        head=(float(head[0]), float(head[1])),
                    )
                )
        return outlines

    # Rendering ---------------------------------------------------------------------------

    def scene(
        self,
        x0: float,
        y0: float,
        height: int,
        width: int,
        pixel_size: float = 1.0,
        event: int = 0,
    ) -> Scene:
        """Render the window with upper-left corner ``(x0, y0)`` as it looks after ``event``."""
        p = float(pixel_size)
        # One pixel of halo on each side: slopes by central differences need the neighbours.
        xs = (x0 + (np.arange(-1, width + 1) + 0.5) * p)[None, :]
        ys = (y0 - (np.arange(-1, height + 1) + 0.5) * p)[:, None]
        x, y = xs[:, 1:-1], ys[1:-1]

        elev = noise.lattice(self._terrain_nodes, TERRAIN_SPACING, xs, ys)
        gx = (elev[1:-1, 2:] - elev[1:-1, :-2]) / (2.0 * p)
        gy = (elev[:-2, 1:-1] - elev[2:, 1:-1]) / (2.0 * p)
        grad = np.sqrt(gx * gx + gy * gy)

        # Vegetation: forest to grass, textured at metre and canopy scales.
        cover_mix = _ramp(noise.value_noise(self.seed, _Layer.COVER, 90.0, x, y), 0.3, 0.7)
        texture = noise.value_noise(self.seed, _Layer.TEXTURE, 3.0, x, y)
        grain = (
            noise.white(
                self.seed, _Layer.GRAIN, np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
            )
            - 0.5
        )
        soil_tex = 0.88 + 0.2 * noise.value_noise(self.seed, _Layer.SOIL, 2.0, x, y) + 0.16 * grain
        base = _FOREST[:, None, None] + cover_mix * (_GRASS - _FOREST)[:, None, None]
        canvas = base * (0.75 + 0.35 * texture + 0.2 * grain)
        cover = np.zeros((height, width), np.uint8)
        mask = np.zeros((height, width), np.uint8)

        bounds = (float(x[0, 0]), float(y[-1, 0]), float(x[0, -1]), float(y[0, 0]))
        window = (x, y, canvas, cover, mask, soil_tex)
        for shape in self._fields(bounds):
            _paint(shape, window, p)

        # Roads and rivers: bands along zero lines of smooth fields, of constant width in metres.
        gentle = grad < _tan(9.0)
        river_dist = _distance_to_zero(
            noise.lattice(self._valley_nodes, TERRAIN_SPACING, xs, ys), p
        )
        road_dist = _distance_to_zero(noise.lattice(self._road_nodes, TERRAIN_SPACING, xs, ys), p)
        road = np.clip(3.0 - road_dist, 0.0, 1.0) * gentle * (river_dist > 15.0)
        _blend(canvas, cover, road, _ROAD, soil_tex, Cover.ROAD)
        _blend(canvas, cover, np.clip(12.0 - river_dist, 0.0, 1.0), _GRAVEL, soil_tex, Cover.RIVER)
        _blend(canvas, cover, np.clip(5.0 - river_dist, 0.0, 1.0), _WATER, soil_tex, Cover.RIVER)

        for shape in self._patches(bounds) + self._roofs(bounds) + self._shrubs(bounds):
            _paint(shape, window, p)
        for shape in self._scars(bounds):
            if shape.event <= event:
                _paint(shape, window, p)

        # Hill shading (Lambert, sun from the north-west) and a thin, uneven haze.
        shade = (_SUN[2] - _SUN[0] * gx - _SUN[1] * gy) / np.sqrt(1.0 + grad * grad)
        canvas *= 0.85 + 0.21 * np.clip(shade, 0.0, 1.0)
        haze = 0.05 + 0.25 * noise.value_noise(self.seed, _Layer.HAZE, 700.0, x, y)
        canvas += haze * (_HAZE[:, None, None] - canvas)
        rgb = np.clip(canvas + 0.5, 0.0, 255.0).astype(np.uint8)
        slope = np.degrees(np.arctan(grad)).astype(np.float32)

        # Near-infrared from what each pixel shows: leaves bright (grass brighter than forest
        # shade), soil, scars and look-alikes dark, water darkest; shaded and hazed like the RGB.
        leaves = (150.0 + 50.0 * cover_mix) * (0.8 + 0.3 * texture + 0.2 * grain)
        nir = np.where(cover == Cover.VEGETATION, leaves, _NIR[cover] * soil_tex)
        nir = nir * (0.85 + 0.21 * np.clip(shade, 0.0, 1.0))
        nir = nir + haze * (_NIR_HAZE - nir)
        return Scene(
            rgb=rgb,
            mask=mask,
            elevation=elev[1:-1, 1:-1],
            slope=slope,
            cover=cover,
            nir=np.clip(nir + 0.5, 0.0, 255.0).astype(np.uint8),
            lithology=self.lithology(x, y),
        )

    def render(
        self,
        x0: float,
        y0: float,
        height: int,
        width: int,
        pixel_size: float = 1.0,
        event: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """RGB (uint8, (3, H, W)) and landslide mask (uint8 0/1, (H, W)) of a window."""
        scene = self.scene(x0, y0, height, width, pixel_size, event)
        return scene.rgb, scene.mask


def _outline(shape: _Shape, angles: np.ndarray | None = None, inset: float = 1.0) -> np.ndarray:
    """Points of a teardrop's boundary (times ``inset``) at polar ``angles`` of its own frame
    (default: 96 around it), as ``(N, 2)`` map coordinates: where :func:`_paint`'s ``rho`` is 1.
    The lobe terms depend on the direction only, so the boundary radius is ``1 + lobe``."""
    theta = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False) if angles is None else angles
    c2, s2, c3, s3 = shape.lobes
    radius = inset * (
        1.0
        + c2 * np.cos(2 * theta)
        + s2 * np.sin(2 * theta)
        + c3 * np.cos(3 * theta)
        + s3 * np.sin(3 * theta)
    )
    along = radius * np.cos(theta)
    across = radius * np.sin(theta) * np.maximum(1.0 + shape.taper * along, 0.05)
    along_m, across_m = along * shape.half_length, across * shape.half_width
    x = shape.x + along_m * shape.cos - across_m * shape.sin
    y = shape.y + along_m * shape.sin + across_m * shape.cos
    return np.stack([x, y], axis=1)


def _distance_to_zero(field: np.ndarray, pixel_size: float) -> np.ndarray:
    """Approximate distance (m) to the field's zero line: |f| / |grad f|, on a halo-less grid."""
    gx = (field[1:-1, 2:] - field[1:-1, :-2]) / (2.0 * pixel_size)
    gy = (field[:-2, 1:-1] - field[2:, 1:-1]) / (2.0 * pixel_size)
    return np.abs(field[1:-1, 1:-1]) / np.maximum(np.sqrt(gx * gx + gy * gy), 1e-9)


def _blend(
    canvas: np.ndarray,
    cover: np.ndarray,
    alpha: np.ndarray,
    colour: np.ndarray,
    texture: np.ndarray,
    code: Cover,
) -> None:
    canvas += alpha * (colour[:, None, None] * texture - canvas)
    cover[alpha > 0.5] = code


def _paint(shape: _Shape, window: tuple, pixel_size: float) -> None:
    """Draw one shape into the window's canvas, cover codes and (for scars) mask, in place."""
    x, y, canvas, cover, mask, texture = window
    r = shape.reach + pixel_size
    if not (x[0, 0] - r < shape.x < x[0, -1] + r and y[-1, 0] - r < shape.y < y[0, 0] + r):
        return
    cols = np.flatnonzero((x[0] > shape.x - r) & (x[0] < shape.x + r))
    rows = np.flatnonzero((y[:, 0] > shape.y - r) & (y[:, 0] < shape.y + r))
    if cols.size == 0 or rows.size == 0:
        return
    rs, cs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    dx, dy = x[:, cs] - shape.x, y[rs] - shape.y
    along = (dx * shape.cos + dy * shape.sin) / shape.half_length
    across = (dy * shape.cos - dx * shape.sin) / shape.half_width
    if shape.rect:
        rho = np.maximum(np.abs(along), np.abs(across))
        edge = 1.0 / min(shape.half_length, shape.half_width)
    else:
        across = across / np.maximum(1.0 + shape.taper * along, 0.05)
        r2 = along * along + across * across
        rho = np.sqrt(r2)
        # Irregular outline: 2- and 3-fold lobes written with polynomials of the direction.
        c2, s2, c3, s3 = shape.lobes
        a2, b2, ab = along * along, across * across, along * across
        inv = 1.0 / np.maximum(r2, 1e-12)
        lobe = (c2 * (a2 - b2) + s2 * 2.0 * ab) * inv
        lobe += (
            (c3 * along * (a2 - 3.0 * b2) + s3 * across * (3.0 * a2 - b2))
            * inv
            / np.maximum(rho, 1e-6)
        )
        rho = rho / (1.0 + lobe)
        edge = 1.5 * pixel_size / shape.half_width
    inside = rho < 1.0
    alpha = np.clip((1.0 - rho) / edge, 0.0, 1.0).astype(np.float32)
    colour = np.array(shape.colour, np.float32)[:, None, None] * texture[rs, cs]
    if not shape.rect:
        # A shadowed head scarp upslope and fresher debris towards the toe.
        colour = colour * (1.0 - 0.22 * _ramp(-along, 0.55, 0.95) + 0.06 * np.clip(along, 0.0, 1.0))
    target = canvas[:, rs, cs]
    target += alpha * (colour - target)
    cover[rs, cs][inside] = shape.cover
    if shape.cover is Cover.SCAR:
        mask[rs, cs][inside] = 1
