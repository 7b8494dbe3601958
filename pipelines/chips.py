"""Chip datasets in the Bijie layout: pairing, resizing, RGB + DEM early fusion, normalisation.

Layout, as the Bijie landslide dataset is distributed (extra folders are ignored)::

    root/landslide/{image,dem,mask}/<name>.<png|tif|...>
    root/non-landslide/{image,dem}/<name>.<...>     (no mask: all background)

Files pair by stem. The ``dem`` folders are optional: chips without them (RGB and masks only, as
many real inventories come) train models whose bands need no elevation (``red, green, blue``).
Images are RGB (extra bands such as alpha are dropped), DEMs one band of any
type (8/16-bit PNG, float TIFF) kept in their own units, masks 0/255, 0/1 or a colour on black:
any non-zero pixel is landslide. Each chip becomes a (4, size, size) float32 stack (R, G, B,
elevation) resized bilinearly (masks: nearest), then normalised per band with statistics of the
training split only (:func:`band_stats`, :func:`normalize`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipelines.bands import BASE_BANDS, BandSet
from pipelines.errors import InputError

CLASSES = ("landslide", "non-landslide")
SPLITS = ("train", "val", "test")
BAND_NAMES = BASE_BANDS


@dataclass(frozen=True)
class ChipRecord:
    """One sample: its files and whether it is a landslide chip (non-landslide: no mask)."""

    name: str
    image: Path
    dem: Path | None  # None: the dataset has no DEM folder
    mask: Path | None

    @property
    def landslide(self) -> bool:
        return self.mask is not None


def _by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.stem in files:
            raise InputError(f"{path}: ambiguous, {files[path.stem].name} has the same name")
        files[path.stem] = path
    return files


def scan_bijie(root: str | Path) -> list[ChipRecord]:
    """All samples under a Bijie-layout ``root``, sorted by class then name.

    A class with a ``dem`` folder needs a DEM for every image; a class without one has none
    (``ChipRecord.dem`` is None), which only models of RGB bands can use (:func:`load_chip`).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    records = []
    for cls in CLASSES:
        images = _by_stem(root / cls / "image")
        dem_dir = root / cls / "dem"
        dems = _by_stem(dem_dir)
        masks = _by_stem(root / cls / "mask") if cls == "landslide" else {}
        for stem, image in images.items():
            if dem_dir.is_dir() and stem not in dems:
                raise InputError(f"{image}: no DEM named {stem}.* in {dem_dir}")
            if cls == "landslide" and stem not in masks:
                raise InputError(f"{image}: no mask named {stem}.* in {root / cls / 'mask'}")
            records.append(ChipRecord(f"{cls}/{stem}", image, dems.get(stem), masks.get(stem)))
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


def _read(path: Path) -> np.ndarray:
    """All bands of an image as (bands, H, W); palettes expanded to RGB.

    TIFFs go through GDAL (any data type, georeferenced or not); other formats through Pillow,
    which, unlike GDAL's PNG driver, refuses truncated files instead of padding them.
    """
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _read_tiff(path)
        with Image.open(path) as image:
            if image.mode in ("P", "PA"):
                image = image.convert("RGB")
            data = np.asarray(image)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read as an image ({err})") from err
    return data[None] if data.ndim == 2 else data.transpose(2, 0, 1)


def _read_tiff(path: Path) -> np.ndarray:
    import rasterio
    from rasterio.enums import ColorInterp
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
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


def load_chip(
    record: ChipRecord,
    size: int,
    bands: BandSet | None = None,
    resolution_m: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The chip's ``(len(bands), size, size)`` float32 stack in raw units and its 0/1 mask.

    ``bands`` defaults to R, G, B, elevation. Terrain bands need ``resolution_m``, the ground
    size in metres of a pixel of the resized chip.
    """
    bands = bands if bands is not None else BandSet()
    if bands.terrain and resolution_m is None:
        raise InputError(
            f"terrain bands {', '.join(bands.terrain)} need the chips' ground resolution: give "
            "resolution_m (metres per pixel at the training size; 1 for `lsmap synth chips`)"
        )
    image = _read(record.image)
    if image.shape[0] < 3:
        raise InputError(f"{record.image}: expected an RGB image, found {image.shape[0]} band(s)")
    if record.dem is None and bands.needs_dem:
        raise InputError(
            f"{record.image}: no DEM (no {record.image.parent.parent / 'dem'} folder), but bands "
            f"{', '.join(bands.names)} need elevation; add the DEMs or train on --bands rgb"
        )
    if record.mask is None:
        mask = np.zeros(image.shape[1:], np.uint8)
    else:
        labels = _read(record.mask)
        # Colour masks: any non-zero colour channel; an alpha band says nothing about the class.
        labels = labels[:3] if labels.shape[0] >= 3 else labels[:1]
        mask = (labels != 0).any(axis=0).astype(np.uint8)
        if mask.shape != image.shape[1:]:
            raise InputError(
                f"{record.mask}: mask is {mask.shape[1]}x{mask.shape[0]} px but its image "
                f"{record.image} is {image.shape[2]}x{image.shape[1]} px"
            )
    bilinear, nearest = Image.Resampling.BILINEAR, Image.Resampling.NEAREST
    rgb = np.stack([_resize(b.astype(np.float32), size, bilinear) for b in image[:3]])
    elevation = (
        _resize(_read(record.dem)[0].astype(np.float32), size, bilinear)
        if bands.needs_dem
        else None
    )
    return bands.stack(rgb, elevation, resolution_m), _resize(mask, size, nearest)


def band_stats(
    records: Sequence[ChipRecord],
    size: int,
    bands: BandSet | None = None,
    resolution_m: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation (float64, raw units) over ``records`` at ``size``.

    ``bands`` and ``resolution_m`` as in :func:`load_chip`: terrain bands included.
    """
    if not records:
        raise InputError("cannot compute band statistics of an empty set of chips")
    shift = total = squares = None
    count = 0
    for record in records:
        stack = load_chip(record, size, bands, resolution_m)[0].astype(np.float64)
        stack = stack.reshape(stack.shape[0], -1)
        if shift is None:
            # Sums about a first guess of the mean keep the variance exact for DEMs in metres.
            shift = stack.mean(axis=1)
            total, squares = np.zeros_like(shift), np.zeros_like(shift)
        centred = stack - shift[:, None]
        total += centred.sum(axis=1)
        squares += (centred * centred).sum(axis=1)
        count += stack.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return shift + mean, np.where(std > 0, std, 1.0)


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

    ``bands`` is a :class:`~pipelines.bands.BandSet` or a list of band names (default R, G, B,
    elevation; ``red, green, blue`` is the RGB-only ablation); ``mean``/``std`` are the training
    statistics of exactly those bands (:func:`band_stats`). ``resolution_m`` as in
    :func:`load_chip`.
    """

    def __init__(
        self,
        records: Sequence[ChipRecord],
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        bands: BandSet | Sequence[str] = BASE_BANDS,
        resolution_m: float | None = None,
    ) -> None:
        self.bands = bands if isinstance(bands, BandSet) else BandSet(tuple(bands))
        self.mean = np.asarray(mean, np.float64)
        self.std = np.asarray(std, np.float64)
        if not self.mean.size == self.std.size == len(self.bands):
            raise ValueError(
                f"{self.mean.size} means and {self.std.size} standard deviations for "
                f"{len(self.bands)} bands {list(self.bands.names)}"
            )
        if self.bands.terrain and resolution_m is None:
            raise InputError(
                f"terrain bands {', '.join(self.bands.terrain)} need the chips' ground "
                "resolution (resolution_m)"
            )
        self.records = list(records)
        self.size = size
        self.resolution_m = resolution_m

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        stack, mask = load_chip(self.records[index], self.size, self.bands, self.resolution_m)
        x = normalize(stack, self.mean, self.std)
        return torch.from_numpy(x), torch.from_numpy(mask[None].astype(np.float32))
