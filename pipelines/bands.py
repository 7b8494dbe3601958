"""Band lists: the shorthand for the common layer stacks (RGB, DEM and its terrain bands).

A band list is ``red, green, blue`` (RGB only), ``red, green, blue, elevation`` (RGB + DEM), or
``elevation`` alone (terrain only), either of the last two followed by any bands of
:data:`pipelines.terrain.TERRAIN_BANDS` (``slope``, ``aspect_sin``, ...) in any order, each once.
:func:`pipelines.layers.stack_from_bands` turns one into layers: an imagery layer ``image`` and
an elevation layer ``dem``. Other inputs (multispectral imagery, categorical maps, NDVI) are
declared as layers in a layers file (:mod:`pipelines.layers`).

Named sets, usable wherever a list of names is read (``+``-joined in study band sets): ``rgb``,
``rgbd`` (RGB + elevation) and ``terrain`` (every terrain band), e.g. ``rgbd+terrain``,
``rgbd+slope+relative_elevation`` or ``elevation+terrain`` (terrain only).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pipelines.errors import InputError
from pipelines.terrain import TERRAIN_BANDS

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
        f"bands are {', '.join(RGB_BANDS)} (RGB only), or {', '.join(BASE_BANDS)} or elevation "
        f"alone (terrain only) followed by any of {', '.join(TERRAIN_BANDS)}; named sets: "
        f"{', '.join(PRESETS)}; other inputs are layers (--layers FILE)"
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
    base = BASE_BANDS if names[: len(BASE_BANDS)] == BASE_BANDS else ("elevation",)
    terrain = names[len(base) :]
    if names == RGB_BANDS or (
        names[: len(base)] == base and all(n in TERRAIN_BANDS for n in terrain)
    ):
        repeated = sorted({n for n in terrain if terrain.count(n) > 1})
        if not repeated:
            return
        raise InputError(f"band(s) {', '.join(repeated)} named more than once in {list(names)}")
    unknown = [n for n in names if n not in BASE_BANDS and n not in TERRAIN_BANDS]
    problem = f"unknown band(s) {', '.join(unknown)}" if unknown else "not a valid band list"
    raise InputError(f"{problem} in {list(names)}: {valid_bands_message()}")
