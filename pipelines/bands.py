"""A model's input bands by name: RGB, elevation and terrain bands derived from the DEM.

A band list is ``red, green, blue`` (the RGB-only ablation) or ``red, green, blue, elevation``
followed by any bands of :data:`pipelines.terrain.TERRAIN_BANDS` (``slope``, ``aspect_sin``, ...)
in any order, each once. Training (chips) and mapping (regions) both build a model's input with
:meth:`BandSet.stack`, which computes the terrain bands with :func:`pipelines.terrain.compute_terrain`
from the same parameters, recorded in the model bundle (``ModelBundle.terrain``).

Named sets, usable wherever a list of names is read (``+``-joined in study band sets): ``rgb``,
``rgbd`` (RGB + elevation) and ``terrain`` (every terrain band), e.g. ``rgbd+terrain`` or
``rgbd+slope+relative_elevation``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipelines.errors import InputError
from pipelines.raster import Grid
from pipelines.terrain import (
    DEFAULT_RELATIVE_RADIUS_M,
    HILLSHADE_ALTITUDE,
    HILLSHADE_AZIMUTH,
    TERRAIN_BANDS,
    compute_terrain,
    required_halo,
)

RGB_BANDS = ("red", "green", "blue")
BASE_BANDS = (*RGB_BANDS, "elevation")
PRESETS: dict[str, tuple[str, ...]] = {
    "rgb": RGB_BANDS,
    "rgbd": BASE_BANDS,
    "terrain": tuple(TERRAIN_BANDS),
}
# The terrain parameters a bundle records: whatever changes the values of a terrain band.
TERRAIN_PARAMS = ("relative_radius_m", "hillshade_azimuth", "hillshade_altitude")


def valid_bands_message() -> str:
    """What a band list may hold, for error messages."""
    return (
        f"bands are {', '.join(RGB_BANDS)} (RGB only) or {', '.join(BASE_BANDS)} followed by any "
        f"of {', '.join(TERRAIN_BANDS)}; named sets: {', '.join(PRESETS)}"
    )


def expand_bands(tokens: Iterable[str]) -> tuple[str, ...]:
    """Band names with named sets (``rgb``, ``rgbd``, ``terrain``) expanded, in order."""
    names: list[str] = []
    for token in tokens:
        token = token.strip()
        if token:
            names.extend(PRESETS.get(token, (token,)))
    return tuple(names)


def parse_bands(text: str | Sequence[str]) -> tuple[str, ...]:
    """A checked band list from ``"red,green,blue,elevation,slope"`` (or a list of names/sets)."""
    tokens = text.split(",") if isinstance(text, str) else text
    names = expand_bands(tokens)
    check_bands(names)
    return names


def check_bands(names: Sequence[str]) -> None:
    """Raise :class:`InputError` unless ``names`` is a band list this version can build."""
    names = tuple(names)
    terrain = names[len(BASE_BANDS) :]
    if names == RGB_BANDS or (
        names[: len(BASE_BANDS)] == BASE_BANDS and all(n in TERRAIN_BANDS for n in terrain)
    ):
        repeated = sorted({n for n in terrain if terrain.count(n) > 1})
        if not repeated:
            return
        raise InputError(f"band(s) {', '.join(repeated)} named more than once in {list(names)}")
    unknown = [n for n in names if n not in BASE_BANDS and n not in TERRAIN_BANDS]
    problem = f"unknown band(s) {', '.join(unknown)}" if unknown else "not a valid band list"
    raise InputError(f"{problem} in {list(names)}: {valid_bands_message()}")


@dataclass(frozen=True)
class BandSet:
    """An ordered band list and the parameters of its terrain bands.

    ``relative_radius_m`` is the relative-elevation window radius in metres; the hillshade sun
    angles are in degrees. :meth:`terrain_params` is what a bundle records of them.
    """

    names: tuple[str, ...] = BASE_BANDS
    relative_radius_m: float = DEFAULT_RELATIVE_RADIUS_M
    hillshade_azimuth: float = HILLSHADE_AZIMUTH
    hillshade_altitude: float = HILLSHADE_ALTITUDE
    terrain: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.names, str):
            raise TypeError(f"names must be a sequence of band names, not {self.names!r}")
        object.__setattr__(self, "names", tuple(self.names))
        check_bands(self.names)
        if not (math.isfinite(self.relative_radius_m) and self.relative_radius_m > 0):
            raise InputError(f"relative_radius_m must be > 0, got {self.relative_radius_m}")
        if not 0 < self.hillshade_altitude <= 90 or not math.isfinite(self.hillshade_azimuth):
            raise InputError(
                f"hillshade sun at azimuth {self.hillshade_azimuth}, altitude "
                f"{self.hillshade_altitude}: the altitude must be in (0, 90] degrees"
            )
        object.__setattr__(self, "terrain", self.names[len(BASE_BANDS) :])

    def __len__(self) -> int:
        return len(self.names)

    @property
    def needs_dem(self) -> bool:
        """Whether any band comes from a DEM (elevation or a terrain band)."""
        return len(self.names) > len(RGB_BANDS)

    def terrain_params(self) -> dict[str, float]:
        """The parameters that fix the terrain bands' values (empty without terrain bands)."""
        if not self.terrain:
            return {}
        return {name: float(getattr(self, name)) for name in TERRAIN_PARAMS}

    @classmethod
    def from_record(cls, names: Sequence[str], params: Mapping[str, float]) -> BandSet:
        """The band set a bundle records: its ``bands`` and ``terrain`` parameters.

        A bundle without terrain parameters (written before terrain bands existed) has the
        defaults; a parameter this version does not know is refused (it would change values).
        """
        unknown = sorted(set(params) - set(TERRAIN_PARAMS))
        if unknown:
            raise InputError(
                f"the model's terrain parameters {', '.join(unknown)} are unknown to this lsmap "
                f"(it knows {', '.join(TERRAIN_PARAMS)}); upgrade lsmap to use this model"
            )
        return cls(tuple(names), **{k: float(v) for k, v in params.items()})

    def halo(self, spacing: Grid | float) -> int:
        """DEM pixels beyond a window that its terrain bands need (0 without terrain bands)."""
        return required_halo(self.terrain, spacing, relative_radius_m=self.relative_radius_m)

    def derive(self, dem: np.ndarray, spacing: Grid | float) -> np.ndarray:
        """The terrain bands of ``dem`` (``(H, W)``, NaN = no data) as ``float32 (n, H, W)``.

        ``spacing`` is the DEM array's own grid or pixel size in metres. As in
        :func:`pipelines.terrain.compute_terrain`, the outer :meth:`halo` pixels follow the edge
        rule: a caller with neighbouring data pads the DEM by :meth:`halo` and crops the result.
        """
        return compute_terrain(
            dem,
            spacing,
            self.terrain,
            relative_radius_m=self.relative_radius_m,
            hillshade_azimuth=self.hillshade_azimuth,
            hillshade_altitude=self.hillshade_altitude,
        )

    def assemble(
        self, rgb: np.ndarray, dem: np.ndarray | None, derived: np.ndarray | None
    ) -> np.ndarray:
        """The model input in band order, ``float32 (len(self), H, W)``, from its parts on the
        same ``H x W`` pixels: ``rgb (3, H, W)``, ``dem (H, W)`` and the :meth:`derive` bands
        (``dem`` None when not :attr:`needs_dem`)."""
        parts = [np.asarray(rgb, np.float32)]
        if self.needs_dem:
            parts.append(np.asarray(dem, np.float32)[None])
        if self.terrain:
            parts.append(np.asarray(derived, np.float32))
        return np.concatenate(parts)

    def stack(
        self, rgb: np.ndarray, dem: np.ndarray | None, spacing: Grid | float | None
    ) -> np.ndarray:
        """The model input of a self-contained RGB + DEM (e.g. a chip): no neighbours, so its
        terrain bands' outer :meth:`halo` pixels follow the terrain edge rule."""
        derived = self.derive(dem, spacing) if self.terrain else None
        return self.assemble(rgb, dem, derived)
