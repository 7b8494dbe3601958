"""Chip datasets in the Bijie layout: pairing, resizing, RGB + DEM early fusion, normalisation.

Layout, as the Bijie landslide dataset is distributed, plus a folder per extra input layer::

    root/landslide/{image,dem,mask,<layer>...}/<name>.<png|tif|...>
    root/non-landslide/{image,dem,<layer>...}/<name>.<...>     (no mask: all background)

Files pair by stem with the ``image`` folder, which lists the samples. A model's layers
(:mod:`pipelines.layers`) read the folder of their name: ``image`` (imagery), ``dem``
(elevation), ``lithology`` (a categorical layer so named), ... A folder that exists must hold a
file for every image; folders no layer reads are ignored, so chips without ``dem`` (RGB and
masks only, as many real inventories come) train models that need no elevation. The RGB
``image`` layer drops extra bands such as alpha; DEMs are one band of any type (8/16-bit PNG,
float TIFF) kept in their own units; masks 0/255, 0/1 or a colour on black: any non-zero pixel is
landslide. Each chip becomes a ``(bands, size, size)`` float32 stack, every file resized to
``size`` (bilinear; categorical layers and masks nearest), then normalised per band with
statistics of the training split only (:func:`band_stats`, :func:`normalize`). The root is a
local folder or an ``s3://`` prefix: files are listed and read through :mod:`pipelines.storage`, so
Ray workers on other machines read the same chips.
"""

from __future__ import annotations

import io
import posixpath
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rasterio.errors import RasterioIOError

from pipelines import storage
from pipelines.bands import BASE_BANDS
from pipelines.errors import InputError
from pipelines.layers import ImageryLayer, Layer, LayerStack, stack_from_bands

CLASSES = ("landslide", "non-landslide")
SPLITS = ("train", "val", "test")
BAND_NAMES = BASE_BANDS


@dataclass(frozen=True)
class ChipRecord:
    """One sample: the URIs of its files by folder (``image``, ``dem``, other layers) and whether
    it is a landslide chip (non-landslide: no mask)."""

    name: str
    image: str
    mask: str | None
    layers: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def landslide(self) -> bool:
        return self.mask is not None

    @property
    def dem(self) -> str | None:
        """The chip's DEM file; None when its class has no ``dem`` folder."""
        return self.layers.get("dem")

    def file(self, layer: str) -> str:
        """The chip's file for ``layer`` (its folder's name); refuses a missing folder."""
        if layer == "image":
            return self.image
        if layer not in self.layers:
            folder = storage.join(posixpath.dirname(posixpath.dirname(self.image)), layer)
            if storage.find(folder):
                raise InputError(
                    f"{self.image}: no {layer!r} file named {_stem(self.image)}.* in {folder}"
                )
            if layer == "dem":
                raise InputError(
                    f"{self.image}: no DEM (no {folder} folder), but the model's bands need "
                    "elevation; add the DEMs or train on --bands rgb"
                )
            raise InputError(
                f"{self.image}: no {folder} folder, but the model reads layer {layer!r} from it; "
                "add the folder or train on other layers"
            )
        return self.layers[layer]


def _stem(uri: str) -> str:
    return posixpath.splitext(posixpath.basename(uri))[0]


def _folder(uri: str) -> str:
    """The name of the folder holding ``uri`` (``image``, ``dem``, ...)."""
    return posixpath.basename(posixpath.dirname(uri))


def _chip_tree(root: str) -> dict[str, dict[str, dict[str, str]]]:
    """``{class: {folder: {stem: uri}}}`` of the files ``class/folder/name.ext`` under ``root``
    (hidden names and files at other depths ignored), from one listing of ``root``."""
    tree: dict[str, dict[str, dict[str, str]]] = {}
    for relative in storage.find(root):
        parts = relative.split("/")
        if len(parts) != 3 or parts[0] not in CLASSES or any(p.startswith(".") for p in parts):
            continue
        cls, folder, name = parts
        files = tree.setdefault(cls, {}).setdefault(folder, {})
        uri = storage.join(root, relative)
        stem = _stem(name)
        if stem in files:
            raise InputError(
                f"{uri}: ambiguous, {posixpath.basename(files[stem])} has the same name"
            )
        files[stem] = uri
    return tree


def scan_bijie(root: str | Path) -> list[ChipRecord]:
    """All samples under a Bijie-layout ``root`` (a local folder or an s3:// prefix), sorted by
    class then name; their URIs are absolute.

    Every other folder of a class is a layer folder, read only by models with a layer of its
    name (:func:`load_chip` refuses a chip without the file). A ``dem`` folder, read by most
    models, must hold a DEM for every image.
    """
    root = storage.absolute(str(root))
    if not storage.is_remote(root) and not Path(root).is_dir():
        raise InputError(f"{root}: not a directory")
    tree = _chip_tree(root)
    records = []
    for cls in CLASSES:
        folders = tree.get(cls, {})
        images = folders.get("image", {})
        masks = folders.get("mask", {}) if cls == "landslide" else {}
        layers = {name: files for name, files in folders.items() if name not in ("image", "mask")}
        for stem, image in sorted(images.items()):
            if "dem" in layers and stem not in layers["dem"]:
                raise InputError(
                    f"{image}: no DEM named {stem}.* in {storage.join(root, cls, 'dem')}"
                )
            if cls == "landslide" and stem not in masks:
                raise InputError(
                    f"{image}: no mask named {stem}.* in {storage.join(root, cls, 'mask')}"
                )
            files = {
                name: by_stem[stem] for name, by_stem in sorted(layers.items()) if stem in by_stem
            }
            records.append(ChipRecord(f"{cls}/{stem}", image, masks.get(stem), files))
    if not records:
        raise InputError(
            f"{root}: no chips found (expected landslide/image or non-landslide/image)"
        )
    return records


def split_records(
    records: Sequence[ChipRecord],
    seed: int,
    fractions: tuple[float, float, float] = (0.64, 0.16, 0.20),
) -> dict[str, list[ChipRecord]]:
    """Deterministic train/val/test split, stratified by class; independent of input order."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    rng = np.random.default_rng(seed)
    splits: dict[str, list[ChipRecord]] = {name: [] for name in SPLITS}
    for landslide in (True, False):
        group = sorted((r for r in records if r.landslide == landslide), key=lambda r: r.name)
        order = rng.permutation(len(group))
        n_train = round(fractions[0] * len(group))
        n_val = round(fractions[1] * len(group))
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val)}
        bounds["test"] = (n_train + n_val, len(group))
        for name, (lo, hi) in bounds.items():
            splits[name].extend(group[i] for i in order[lo:hi])
    return splits


def _read(uri: str) -> np.ndarray:
    """All bands of an image file (local or s3://) as (bands, H, W); palettes expanded to RGB.

    TIFFs go through GDAL (any data type, georeferenced or not); other formats through Pillow,
    which, unlike GDAL's PNG driver, refuses truncated files instead of padding them.
    """
    content = storage.read_bytes(uri)
    try:
        if uri.lower().endswith((".tif", ".tiff")):
            return _decode_tiff(content)
        with Image.open(io.BytesIO(content)) as image:
            if image.mode in ("P", "PA"):
                image = image.convert("RGB")
            data = np.asarray(image)
    except (OSError, ValueError, RasterioIOError) as err:
        raise InputError(f"{uri}: cannot read as an image ({err})") from err
    return data[None] if data.ndim == 2 else data.transpose(2, 0, 1)


def _decode_tiff(content: bytes) -> np.ndarray:
    from rasterio.enums import ColorInterp
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with MemoryFile(content) as memory, memory.open() as src:
            data = src.read()
            if src.colorinterp[0] != ColorInterp.palette:
                return data
            lut = np.zeros((256, 3), np.uint8)
            for index, rgba in src.colormap(1).items():
                lut[index] = rgba[:3]
            return lut[data[0]].transpose(2, 0, 1)


def _resize(band: np.ndarray, size: int, resample: Image.Resampling) -> np.ndarray:
    if band.shape == (size, size):
        return band
    return np.asarray(Image.fromarray(band).resize((size, size), resample))


def load_mask(record: ChipRecord, size: int) -> np.ndarray:
    """The chip's 0/1 landslide mask at ``size`` (all 0 for a chip without a mask)."""
    if record.mask is None:
        return np.zeros((size, size), np.uint8)
    labels = _read(record.mask)
    # Colour masks: any non-zero colour channel; an alpha band says nothing about the class.
    labels = labels[:3] if labels.shape[0] >= 3 else labels[:1]
    mask = (labels != 0).any(axis=0).astype(np.uint8)
    return _resize(mask, size, Image.Resampling.NEAREST)


def _layer_bands(layer: Layer, data: np.ndarray, path: str) -> np.ndarray:
    """The bands of a chip file that ``layer`` reads; refuses a file it would misread."""
    if not isinstance(layer, ImageryLayer):
        return data[:1]
    if str(data.dtype) != layer.dtype:
        raise InputError(
            f"{path} (layer {layer.name!r}): the image is {data.dtype}, but the layer declares "
            f"{layer.dtype}; declare its dtype (and scale) in the layer"
        )
    if layer.pick is None:
        if data.shape[0] < len(layer.bands):
            raise InputError(
                f"{path}: expected an image with {len(layer.bands)} bands "
                f"({', '.join(layer.bands)}), found {data.shape[0]}"
            )
        return data[: len(layer.bands)]  # extra bands, such as alpha, are not the layer's
    if not all(isinstance(p, int) and p <= data.shape[0] for p in layer.pick):
        raise InputError(
            f"{path} (layer {layer.name!r}): picks bands {list(layer.pick)}, but the chip has "
            f"{data.shape[0]} band(s) (chips pick bands by 1-based index)"
        )
    return data[[p - 1 for p in layer.pick]]


def load_chip(
    record: ChipRecord,
    size: int,
    layers: LayerStack | None = None,
    resolution_m: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The chip's ``(len(layers), size, size)`` float32 stack in raw units and its 0/1 mask.

    ``layers`` defaults to R, G, B, elevation. Terrain bands need ``resolution_m``, the ground
    size in metres of a pixel of the resized chip.
    """
    layers = layers if layers is not None else stack_from_bands(BASE_BANDS)
    encoded: dict[str, np.ndarray] = {}
    shape = None
    for layer in layers.files:
        path = record.file(layer.name)
        data = _layer_bands(layer, _read(path), path)
        shape = shape or (path, data.shape[1:])
        resample = (
            Image.Resampling.NEAREST if layer.resampling == "nearest" else Image.Resampling.BILINEAR
        )
        resized = np.stack([_resize(band.astype(np.float32), size, resample) for band in data])
        encoded[layer.name] = layer.encode(resized, resolution_m, str(path))
    if record.mask is not None:
        first, (height, width) = shape
        mask_shape = _read(record.mask).shape[1:]
        if mask_shape != (height, width):
            raise InputError(
                f"{record.mask}: mask is {mask_shape[1]}x{mask_shape[0]} px but its "
                f"{_folder(first)} file {first} is {width}x{height} px"
            )
    return layers.encode(encoded, resolution_m), load_mask(record, size)


def category_codes(records: Sequence[ChipRecord], layer: str) -> tuple[int, ...]:
    """The integer codes found in the ``layer`` files of ``records``, sorted."""
    codes: set[int] = set()
    for record in records:
        path = record.file(layer)
        data = _read(path)[0]
        if not np.issubdtype(data.dtype, np.integer):
            raise InputError(
                f"{path} (layer {layer!r}): class codes must be integers, found {data.dtype}"
            )
        codes.update(int(c) for c in np.unique(data))
    return tuple(sorted(codes))


class BandMoments:
    """Per-band mean and standard deviation accumulated over ``(bands, H, W)`` stacks; NaN
    (no data) is left out. Sums are taken about the first stack's mean, so the variance stays
    exact for values far from 0 (DEMs in metres)."""

    def __init__(self) -> None:
        self.shift: np.ndarray | None = None
        self.total = self.squares = self.count = np.zeros(0)

    def add(self, stack: np.ndarray) -> None:
        stack = np.asarray(stack, np.float64).reshape(stack.shape[0], -1)
        if self.shift is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a band all NaN in this stack
                self.shift = np.nan_to_num(np.nanmean(stack, axis=1))
            self.total, self.squares = np.zeros_like(self.shift), np.zeros_like(self.shift)
            self.count = np.zeros_like(self.shift)
        centred = stack - self.shift[:, None]
        self.total += np.nansum(centred, axis=1)
        self.squares += np.nansum(centred * centred, axis=1)
        self.count += np.isfinite(stack).sum(axis=1)

    def result(self, names: Sequence[str], where: str) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` (float64; std 1 for a constant band); refuses bands of ``names``
        that had no data in any stack (``where`` says in what)."""
        if self.shift is None:
            raise InputError(f"cannot compute band statistics of no {where}")
        if not self.count.all():
            empty = [name for name, n in zip(names, self.count, strict=True) if not n]
            raise InputError(f"band(s) {empty} have no data in any {where}")
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean * mean, 0.0))
        return self.shift + mean, np.where(std > 0, std, 1.0)


def band_stats(
    records: Sequence[ChipRecord],
    size: int,
    layers: LayerStack | None = None,
    resolution_m: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation (float64, raw units) over ``records`` at ``size``.

    ``layers`` and ``resolution_m`` as in :func:`load_chip`: terrain bands included; pixels a
    layer has no data for (NaN) are left out of its bands' statistics.
    """
    if not records:
        raise InputError("cannot compute band statistics of an empty set of chips")
    layers = layers if layers is not None else stack_from_bands(BASE_BANDS)
    moments = BandMoments()
    for record in records:
        moments.add(load_chip(record, size, layers, resolution_m)[0])
    return moments.result(layers.names, "training chip")


def normalize(stack: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Standardise bands: ``(stack - mean) / std`` on the band axis of (C, H, W) or (N, C, H, W).

    The one normalisation used for training and mapping alike; returns float32.
    """
    mean = np.asarray(mean, np.float64)
    std = np.asarray(std, np.float64)
    if stack.ndim not in (3, 4) or stack.shape[-3] != mean.size or std.size != mean.size:
        raise ValueError(f"stack of shape {stack.shape} does not match {mean.size} band statistics")
    return ((stack - mean[:, None, None]) / std[:, None, None]).astype(np.float32)


class ChipDataset(torch.utils.data.Dataset):
    """Normalised chips as ``(x (C, H, W), y (1, H, W))`` float32 tensors.

    ``layers`` is a :class:`~pipelines.layers.LayerStack` or a band list (default R, G, B,
    elevation; ``red, green, blue`` is the RGB-only ablation); ``mean``/``std`` are the training
    statistics of exactly its bands (:func:`band_stats`). ``resolution_m`` as in
    :func:`load_chip`. Pixels without data read as the training mean, as in mapping.
    """

    def __init__(
        self,
        records: Sequence[ChipRecord],
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        layers: LayerStack | Sequence[str] = BASE_BANDS,
        resolution_m: float | None = None,
    ) -> None:
        self.layers = layers if isinstance(layers, LayerStack) else stack_from_bands(layers)
        self.mean = np.asarray(mean, np.float64)
        self.std = np.asarray(std, np.float64)
        if not self.mean.size == self.std.size == len(self.layers):
            raise ValueError(
                f"{self.mean.size} means and {self.std.size} standard deviations for "
                f"{len(self.layers)} bands {list(self.layers.names)}"
            )
        self.records = list(records)
        self.size = size
        self.resolution_m = resolution_m

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        stack, mask = load_chip(self.records[index], self.size, self.layers, self.resolution_m)
        x = normalize(stack, self.mean, self.std)
        x[~np.isfinite(x)] = 0.0
        return torch.from_numpy(x), torch.from_numpy(mask[None].astype(np.float32))
