"""A model's inputs as named layers: what each reads, and the bands it gives the model.

Each layer kind is one class; a :class:`LayerStack` is a model's layers in order, and the model's
bands are its layers' bands in that order. Training (chips) and mapping (regions) build a model's
input through the same :meth:`LayerStack.encode`, from the same parameters, recorded in the model
bundle (``ModelBundle.layers``).

Kinds (``kind:`` in a layers file, see docs/layers.md):

- ``imagery``: bands of one image of any band count and dtype, picked by index (1-based) or by
  band description, times ``scale`` plus ``offset``. Its ``dtype`` is declared (default
  ``uint8``): a file of another type is refused, so 16-bit imagery is never read as 8-bit.
- ``elevation``: a DEM, giving ``elevation`` and the terrain bands derived from it
  (:mod:`pipelines.terrain`), which read a halo of neighbouring DEM.
- ``categorical``: class codes (lithology, land cover), resampled by nearest neighbour, never
  interpolated, and one-hot encoded: one band per category, ``<name>=<code>``. A code the model
  never saw is an error, or, with ``unseen: other``, goes to an extra ``<name>=other`` band.
- ``ndvi``: ``(nir - red) / (nir + red)`` of an imagery layer's bands; reads no file.
- ``distance``: metres to the nearest feature of a vector file (rivers, roads, faults), capped
  at ``max_distance``, which is also the halo it reads (:mod:`pipelines.vectors`).

A ``mask`` (:class:`MaskLayer`, mapping only, not a model input) reads class codes and makes
the pixels whose code it lists nodata in the map.

Values: ``float32``, NaN where a layer has no data (outside its file, its nodata value).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from pipelines.bands import RGB_BANDS, TERRAIN_PARAMS, check_bands
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

IMAGE_DTYPES = ("uint8", "uint16", "int16", "float32")


def file_name(uri: str | Sequence[str]) -> str:
    """A layer's file(s) as messages name them (credentials redacted)."""
    from pipelines import storage

    uris = (uri,) if isinstance(uri, str) else tuple(uri)
    return ", ".join(storage.redact(u) for u in uris)


class Layer:
    """One named input of a model. Subclasses are frozen dataclasses with a ``name`` field."""

    kind: ClassVar[str]
    # Whether the layer is read from a file (False: derived from other layers' bands).
    reads_file: ClassVar[bool] = True
    # How its file is resampled onto another grid (see pipelines.raster.read_window).
    resampling: ClassVar[str] = "bilinear"
    name: str

    @property
    def bands(self) -> tuple[str, ...]:
        """The model bands this layer gives, in order."""
        raise NotImplementedError

    def halo(self, spacing: Grid | float) -> int:
        """Pixels of neighbouring data the layer's values need beyond a window (0: none)."""
        return 0

    def check_file(self, da: Any, uri: str | Sequence[str]) -> Any:
        """The bands of the opened mosaic ``da`` (``(band, y, x)``) this layer reads; refuses a
        file it would misread, naming the layer and ``uri``."""
        return da

    def encode(
        self, raw: np.ndarray, spacing: Grid | float | None, uri: str | Sequence[str]
    ) -> np.ndarray:
        """The layer's bands ``(len(self.bands), H, W)`` from the values of its file's selected
        bands ``(n, H, W)`` (NaN = no data) on a grid of pixel size ``spacing``."""
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """The layer as JSON values: what a bundle stores and a layers file holds."""
        values = {"name": self.name, "kind": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name != "name" and f.init and value is not None:
                values[f.name] = list(value) if isinstance(value, tuple) else value
        return values

    def describe(self) -> str:
        return f"layer {self.name!r} ({self.kind})"

    def _one_band(self, da: Any, uri: str | Sequence[str], what: str) -> Any:
        """``da`` when it has one band (``what`` it should hold), else an InputError."""
        if da.sizes["band"] != 1:
            raise InputError(
                f"{file_name(uri)} ({self.describe()}): expected {what}, found "
                f"{da.sizes['band']} bands"
            )
        return da


def _names(value: Any, what: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InputError(f"{what} must be a list, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class ImageryLayer(Layer):
    """Bands of an image. ``bands`` names them for the model; ``pick`` says which of the file's
    bands they are (1-based indexes or band descriptions; default: the first ``len(bands)``,
    and then the file must have exactly that many). Values are ``raw * scale + offset`` after
    any scale/offset stored in the file."""

    kind: ClassVar[str] = "imagery"
    name: str = "image"
    bands: tuple[str, ...] = RGB_BANDS
    pick: tuple[int | str, ...] | None = None
    dtype: str = "uint8"
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(str(b) for b in _names(self.bands, "bands")))
        if not self.bands:
            raise InputError(f"{self.describe()}: names no bands")
        if self.pick is not None:
            pick = _names(self.pick, "pick")
            if len(pick) != len(self.bands):
                raise InputError(
                    f"{self.describe()}: picks {len(pick)} file band(s) for {len(self.bands)} "
                    f"band name(s) {list(self.bands)}"
                )
            if any(isinstance(p, int) and not isinstance(p, bool) and p < 1 for p in pick):
                raise InputError(f"{self.describe()}: band indexes start at 1, got {list(pick)}")
            object.__setattr__(self, "pick", pick)
        if self.dtype not in IMAGE_DTYPES:
            raise InputError(
                f"{self.describe()}: dtype {self.dtype!r} is not one of {', '.join(IMAGE_DTYPES)}"
            )
        for name in ("scale", "offset"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{self.describe()}: {name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not (math.isfinite(self.scale) and self.scale != 0 and math.isfinite(self.offset)):
            raise InputError(f"{self.describe()}: scale must be non-zero and finite")

    def check_file(self, da: Any, uri: str | Sequence[str]) -> Any:
        where = f"{file_name(uri)} ({self.describe()})"
        dtype = str(da.dtype)
        if dtype != self.dtype:
            hint = (
                f"declare `dtype: {dtype}` (and its `scale`) in the layer"
                if dtype in IMAGE_DTYPES
                else f"convert it to one of {', '.join(IMAGE_DTYPES)}"
            )
            raise InputError(
                f"{where}: the image is {dtype}, but the layer declares {self.dtype}; a model "
                f"learns what values mean, so {hint} to train such a model, or convert the file "
                f"to {self.dtype} as the model was trained (e.g. gdal_translate -ot ... -scale)"
            )
        available = [str(b) for b in da.coords["band"].values]
        if self.pick is None:
            if len(available) != len(self.bands):
                raise InputError(
                    f"{where}: expected an image with {len(self.bands)} bands "
                    f"({', '.join(self.bands)}), found {len(available)}; say which to use with "
                    "`pick:` (1-based indexes or band names)"
                )
            return da
        positions = []
        for wanted in self.pick:
            if isinstance(wanted, int) and not isinstance(wanted, bool):
                if wanted > len(available):
                    raise InputError(
                        f"{where}: band index {wanted} does not exist; the file has "
                        f"{len(available)} band(s)"
                    )
                positions.append(wanted - 1)
            elif str(wanted) in available:
                positions.append(available.index(str(wanted)))
            else:
                raise InputError(
                    f"{where}: no band named {wanted!r}; the file's bands are {available}"
                )
        return da.isel(band=positions)

    def encode(
        self, raw: np.ndarray, spacing: Grid | float | None, uri: str | Sequence[str]
    ) -> np.ndarray:
        values = np.asarray(raw, np.float32)
        if self.scale != 1.0 or self.offset != 0.0:
            values = values * np.float32(self.scale) + np.float32(self.offset)
        return values.astype(np.float32, copy=False)


@dataclass(frozen=True)
class ElevationLayer(Layer):
    """A DEM: ``elevation`` then the ``terrain`` bands derived from it, in metres and degrees.

    ``relative_radius_m`` is the relative-elevation window radius; the hillshade sun angles are
    in degrees."""

    kind: ClassVar[str] = "elevation"
    name: str = "dem"
    terrain: tuple[str, ...] = ()
    relative_radius_m: float = DEFAULT_RELATIVE_RADIUS_M
    hillshade_azimuth: float = HILLSHADE_AZIMUTH
    hillshade_altitude: float = HILLSHADE_ALTITUDE

    def __post_init__(self) -> None:
        terrain = tuple(str(t) for t in _names(self.terrain, "terrain"))
        object.__setattr__(self, "terrain", terrain)
        unknown = [t for t in terrain if t not in TERRAIN_BANDS]
        if unknown:
            raise InputError(
                f"{self.describe()}: unknown terrain band(s) {', '.join(unknown)}; terrain bands "
                f"are {', '.join(TERRAIN_BANDS)}"
            )
        for name in ("relative_radius_m", "hillshade_azimuth", "hillshade_altitude"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not (math.isfinite(self.relative_radius_m) and self.relative_radius_m > 0):
            raise InputError(f"relative_radius_m must be > 0, got {self.relative_radius_m}")
        if not 0 < self.hillshade_altitude <= 90 or not math.isfinite(self.hillshade_azimuth):
            raise InputError(
                f"hillshade sun at azimuth {self.hillshade_azimuth}, altitude "
                f"{self.hillshade_altitude}: the altitude must be in (0, 90] degrees"
            )

    @property
    def bands(self) -> tuple[str, ...]:
        return ("elevation", *self.terrain)

    def halo(self, spacing: Grid | float) -> int:
        return required_halo(self.terrain, spacing, relative_radius_m=self.relative_radius_m)

    def check_file(self, da: Any, uri: str | Sequence[str]) -> Any:
        return self._one_band(da, uri, "a single-band DEM")

    def encode(
        self, raw: np.ndarray, spacing: Grid | float | None, uri: str | Sequence[str]
    ) -> np.ndarray:
        """Elevation and its terrain bands; the outer :meth:`halo` pixels follow the terrain
        edge rule, so a caller with neighbouring data pads by the halo and crops."""
        dem = np.asarray(raw[0], np.float32)
        if not self.terrain:
            return dem[None]
        if spacing is None:
            raise InputError(
                f"terrain bands {', '.join(self.terrain)} need the chips' ground resolution: give "
                "resolution_m (metres per pixel at the training size; 1 for `lsmap synth chips`)"
            )
        derived = compute_terrain(
            dem,
            spacing,
            self.terrain,
            relative_radius_m=self.relative_radius_m,
            hillshade_azimuth=self.hillshade_azimuth,
            hillshade_altitude=self.hillshade_altitude,
        )
        return np.concatenate([dem[None], derived])

    def record(self) -> dict[str, Any]:
        values = super().record()
        if not self.terrain:  # the terrain parameters change nothing then
            for name in ("relative_radius_m", "hillshade_azimuth", "hillshade_altitude"):
                values.pop(name)
        return values


UNSEEN_POLICIES = ("error", "other")


@dataclass(frozen=True)
class CategoricalLayer(Layer):
    """Class codes, one-hot: a band ``<name>=<code>`` per category, plus ``<name>=other`` when
    ``unseen`` is ``other``. ``categories`` are the integer codes the model knows (empty until
    training measures them on its chips)."""

    kind: ClassVar[str] = "categorical"
    resampling: ClassVar[str] = "nearest"
    name: str = "lithology"
    categories: tuple[int, ...] = ()
    unseen: str = "error"

    def __post_init__(self) -> None:
        codes = _names(self.categories, "categories")
        if any(isinstance(c, bool) or float(c) != int(c) for c in codes):
            raise InputError(f"{self.describe()}: categories must be integer codes, got {codes}")
        codes = tuple(int(c) for c in codes)
        if len(set(codes)) != len(codes):
            raise InputError(f"{self.describe()}: categories {list(codes)} repeat a code")
        object.__setattr__(self, "categories", tuple(sorted(codes)))
        if self.unseen not in UNSEEN_POLICIES:
            raise InputError(
                f"{self.describe()}: unseen must be one of {', '.join(UNSEEN_POLICIES)}, "
                f"got {self.unseen!r}"
            )

    @property
    def bands(self) -> tuple[str, ...]:
        other = (f"{self.name}=other",) if self.unseen == "other" else ()
        return (*(f"{self.name}={code}" for code in self.categories), *other)

    def check_file(self, da: Any, uri: str | Sequence[str]) -> Any:
        self._one_band(da, uri, "one band of class codes")
        if not np.issubdtype(da.dtype, np.integer):
            raise InputError(
                f"{file_name(uri)} ({self.describe()}): class codes must be integers, the "
                f"file holds {da.dtype}"
            )
        return da

    def encode(
        self, raw: np.ndarray, spacing: Grid | float | None, uri: str | Sequence[str]
    ) -> np.ndarray:
        """One-hot bands: each pixel with a code sums to 1; nodata pixels are NaN in all."""
        codes = np.asarray(raw[0])
        valid = np.isfinite(codes)
        known = np.isin(codes, self.categories) & valid
        unseen = valid & ~known
        if unseen.any() and self.unseen == "error":
            found = sorted({int(c) for c in np.unique(codes[unseen])})
            raise InputError(
                f"{file_name(uri)} ({self.describe()}): category code(s) {found} were not "
                f"in the model's training data (it knows {list(self.categories)}); map them to "
                "known codes, or train with `unseen: other`"
            )
        onehot = np.stack([codes == code for code in self.categories]).astype(np.float32)
        if self.unseen == "other":
            onehot = np.concatenate([onehot, unseen[None].astype(np.float32)])
        onehot[:, ~valid] = np.nan
        return onehot


@dataclass(frozen=True)
class NdviLayer(Layer):
    """``(nir - red) / (nir + red)`` of the bands ``red`` and ``nir`` of imagery layer ``of``;
    0 where both are 0, NaN where either has no data."""

    kind: ClassVar[str] = "ndvi"
    reads_file: ClassVar[bool] = False
    name: str = "ndvi"
    of: str = "image"
    red: str = "red"
    nir: str = "nir"

    @property
    def bands(self) -> tuple[str, ...]:
        return (self.name,)

    def derive(self, red: np.ndarray, nir: np.ndarray) -> np.ndarray:
        total = nir + red
        with np.errstate(invalid="ignore", divide="ignore"):
            ndvi = np.where(total != 0, (nir - red) / total, 0.0)
        return ndvi.astype(np.float32)[None]


@dataclass(frozen=True)
class DistanceLayer(Layer):
    """Metres from each pixel to the nearest feature of a vector file (rivers, roads, faults),
    capped at ``max_distance``: features further than that change nothing, so a window reads
    features up to ``max_distance`` beyond it (its halo) and tiles join exactly.

    In chips, the layer's folder holds the distances as rasters (metres, exact up to at least
    ``max_distance``; :func:`pipelines.vectors.distance_to_features` makes them)."""

    kind: ClassVar[str] = "distance"
    name: str = "rivers"
    max_distance: float = 0.0

    def __post_init__(self) -> None:
        value = self.max_distance
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{self.describe()}: max_distance must be metres, got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise InputError(
                f"{self.describe()}: needs `max_distance`, the metres beyond which features do "
                f"not matter (> 0), got {value}"
            )
        object.__setattr__(self, "max_distance", float(value))

    @property
    def bands(self) -> tuple[str, ...]:
        return (self.name,)

    def halo(self, spacing: Grid | float) -> int:
        from pipelines.terrain import ground_pixel_size
        from pipelines.vectors import halo_pixels

        return halo_pixels(self.max_distance, ground_pixel_size(spacing))

    def encode(
        self, raw: np.ndarray, spacing: Grid | float | None, uri: str | Sequence[str]
    ) -> np.ndarray:
        """The distances capped at ``max_distance`` (NaN stays no data)."""
        return np.minimum(np.asarray(raw[:1], np.float32), np.float32(self.max_distance))


@dataclass(frozen=True)
class MaskLayer(Layer):
    """A mask read like a layer (nearest neighbour): a pixel whose code is in ``codes`` (a
    scene classification's clouds and shadows) is nodata in the map. Not a model input: it is
    given at mapping time, never recorded in a bundle."""

    kind: ClassVar[str] = "mask"
    resampling: ClassVar[str] = "nearest"
    name: str = "mask"
    codes: tuple[int, ...] = ()

    @property
    def bands(self) -> tuple[str, ...]:
        return ("masked",)

    def check_file(self, da: Any, uri: str | Sequence[str]) -> Any:
        return self._one_band(da, uri, "one band of class codes")

    def encode(
        self, raw: np.ndarray, spacing: Grid | float | None, uri: str | Sequence[str]
    ) -> np.ndarray:
        """1 where the pixel is masked, else 0 (its nodata is not masked)."""
        return np.isin(raw[0], self.codes).astype(np.float32)[None]


KINDS: dict[str, type[Layer]] = {
    cls.kind: cls
    for cls in (ImageryLayer, ElevationLayer, CategoricalLayer, NdviLayer, DistanceLayer)
}


def layer_from_record(record: Mapping[str, Any]) -> Layer:
    """A layer from its JSON/YAML record (``name``, ``kind`` and the kind's parameters)."""
    if not isinstance(record, Mapping):
        raise InputError(f"a layer must be a mapping of name, kind and options, got {record!r}")
    name, kind = record.get("name"), record.get("kind")
    if not isinstance(name, str) or not name or "=" in name:
        raise InputError(f"a layer needs a name (text without '='), got {name!r}")
    if kind not in KINDS:
        raise InputError(f"layer {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    cls = KINDS[kind]
    known = {f.name for f in fields(cls) if f.init}  # type: ignore[arg-type]
    options = {k: v for k, v in record.items() if k != "kind"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(
            f"layer {name!r} ({kind}): unknown option(s) {', '.join(unknown)}; a {kind} layer "
            f"takes {', '.join(sorted(known - {'name'}))}"
        )
    try:
        return cls(**options)
    except TypeError as err:
        raise InputError(f"layer {name!r} ({kind}): {err}") from err


@dataclass(frozen=True)
class LayerStack:
    """A model's layers in order; its bands (:attr:`names`) are theirs, in that order."""

    layers: tuple[Layer, ...]
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise InputError("a model needs at least one input layer")
        seen: set[str] = set()
        for layer in layers:
            if layer.name in seen:
                raise InputError(f"two layers are named {layer.name!r}; names must be unique")
            seen.add(layer.name)
        names = tuple(band for layer in layers for band in layer.bands)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InputError(f"band(s) {', '.join(repeated)} named by more than one layer")
        for layer in layers:
            if isinstance(layer, NdviLayer):
                source = next((s for s in layers if s.name == layer.of), None)
                if not isinstance(source, ImageryLayer):
                    raise InputError(
                        f"{layer.describe()}: needs an imagery layer named {layer.of!r}"
                    )
                missing = [b for b in (layer.red, layer.nir) if b not in source.bands]
                if missing:
                    raise InputError(
                        f"{layer.describe()}: imagery layer {layer.of!r} has no band(s) "
                        f"{', '.join(missing)} (its bands: {', '.join(source.bands)})"
                    )
        object.__setattr__(self, "names", names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def files(self) -> tuple[Layer, ...]:
        """The layers read from files, in order."""
        return tuple(layer for layer in self.layers if layer.reads_file)

    @property
    def needs_dem(self) -> bool:
        """Whether any band comes from a DEM (elevation or a terrain band)."""
        return any(isinstance(layer, ElevationLayer) for layer in self.layers)

    @property
    def categorical(self) -> tuple[CategoricalLayer, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, CategoricalLayer))

    def encode(self, raw: Mapping[str, np.ndarray], spacing: Grid | float | None) -> np.ndarray:
        """The model input ``float32 (len(self), H, W)`` from each file layer's already encoded
        bands (``raw[name]``, from :meth:`Layer.encode`): derived layers are computed here."""
        parts = []
        for layer in self.layers:
            if isinstance(layer, NdviLayer):
                source = self[layer.of]
                bands = raw[layer.of]
                parts.append(
                    layer.derive(
                        bands[source.bands.index(layer.red)], bands[source.bands.index(layer.nir)]
                    )
                )
            else:
                parts.append(np.asarray(raw[layer.name], np.float32))
        return np.concatenate(parts)

    def record(self) -> list[dict[str, Any]]:
        return [layer.record() for layer in self.layers]

    @classmethod
    def from_record(cls, records: Sequence[Mapping[str, Any]]) -> LayerStack:
        if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
            raise InputError(f"layers must be a list of layers, got {records!r}")
        return cls(tuple(layer_from_record(r) for r in records))

    def with_layer(self, layer: Layer) -> LayerStack:
        """This stack with the layer of the same name replaced by ``layer``."""
        return LayerStack(tuple(layer if x.name == layer.name else x for x in self.layers))


def stack_from_bands(
    names: Sequence[str], terrain: Mapping[str, float] | None = None
) -> LayerStack:
    """The layers of a band list (see :mod:`pipelines.bands`): RGB as imagery layer ``image``,
    elevation and terrain bands as elevation layer ``dem`` with the ``terrain`` parameters."""
    names = tuple(names)
    check_bands(names)
    unknown = sorted(set(terrain or {}) - set(TERRAIN_PARAMS))
    if unknown:
        raise InputError(
            f"the model's terrain parameters {', '.join(unknown)} are unknown to this lsmap "
            f"(it knows {', '.join(TERRAIN_PARAMS)}); upgrade lsmap to use this model"
        )
    layers: list[Layer] = []
    if names[:3] == RGB_BANDS:
        layers.append(ImageryLayer())
    if "elevation" in names:
        terrain_bands = names[names.index("elevation") + 1 :]
        params = {k: float(v) for k, v in (terrain or {}).items()}
        layers.append(ElevationLayer(terrain=terrain_bands, **params))
    return LayerStack(tuple(layers))


def terrain_params(stack: LayerStack) -> dict[str, float]:
    """The terrain parameters of a stack's elevation layer (empty without terrain bands): what
    bundles record in ``terrain`` for lsmap versions that read bands, not layers."""
    for layer in stack.layers:
        if isinstance(layer, ElevationLayer) and layer.terrain:
            record = asdict(layer)
            return {name: float(record[name]) for name in TERRAIN_PARAMS}
    return {}


def stack_for_bundle(bundle: Any) -> LayerStack:
    """The layers a model bundle expects: its ``layers``, or, in bundles that record a band list
    only, the layers of that list (:func:`stack_from_bands`)."""
    try:
        if bundle.layers:
            stack = LayerStack.from_record(bundle.layers)
        else:
            stack = stack_from_bands(bundle.bands, bundle.terrain)
    except InputError as err:
        raise InputError(
            f"the model expects bands {bundle.bands}, which this lsmap cannot build: {err}"
        ) from err
    if list(stack.names) != list(bundle.bands):
        raise InputError(
            f"the model's layers give bands {list(stack.names)}, but it takes {bundle.bands}"
        )
    return stack
