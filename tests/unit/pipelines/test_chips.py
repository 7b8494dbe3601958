"""Bijie-layout chip datasets: pairing, decoding, resizing, splits, statistics and bad data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.transform import from_origin

from pipelines.bands import BASE_BANDS, RGB_BANDS
from pipelines.chips import (
    ChipDataset,
    band_stats,
    load_chip,
    normalize,
    scan_bijie,
    split_records,
)
from pipelines.errors import InputError
from pipelines.layers import stack_from_bands
from pipelines.terrain import compute_terrain

SIZE = 32


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _tif(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    bands = array[None] if array.ndim == 2 else array
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=bands.shape[1],
        width=bands.shape[2],
        count=bands.shape[0],
        dtype=bands.dtype,
        transform=from_origin(500_000.0, 3_000_000.0, 1.0, 1.0),  # like real DEM tiles
    ) as dst:
        dst.write(bands)


def _image(h: int, w: int, value: int) -> np.ndarray:
    return np.full((h, w, 3), (value, value // 2, 255 - value), np.uint8)


def _left_half(h: int, w: int, on) -> np.ndarray:
    mask = np.zeros((h, w) if np.ndim(on) == 0 else (h, w, len(on)), np.uint8)
    mask[:, : w // 2] = on
    return mask


def _write_sample(root: Path, cls: str, i: int) -> None:
    """Formats rotate with ``i``: PNG/TIFF images, 8/16-bit PNG or float TIFF DEMs, and masks of
    0/255, 0/1 (TIFF), red on black (RGB) and palette; sizes vary too."""
    h, w = 40 + 4 * (i % 3), 48 - 4 * (i % 4)
    name = f"{cls[:2]}{i:03d}"
    image = _image(h, w, 10 + i)
    if i % 2:
        _tif(root / cls / "image" / f"{name}.tif", image.transpose(2, 0, 1))
    else:
        _png(root / cls / "image" / f"{name}.png", image)
    dem_value = 1000.0 + i
    if i % 3 == 0:
        _tif(root / cls / "dem" / f"{name}.tif", np.full((h // 2, w // 2), dem_value, np.float32))
    elif i % 3 == 1:
        _png(root / cls / "dem" / f"{name}.png", np.full((h, w), dem_value, np.uint16))
    else:
        _png(root / cls / "dem" / f"{name}.png", np.full((h, w), i, np.uint8))
    if cls != "landslide":
        return
    kind = i % 4
    if kind == 0:
        _png(root / cls / "mask" / f"{name}.png", _left_half(h, w, 255))
    elif kind == 1:
        _tif(root / cls / "mask" / f"{name}.tif", _left_half(h, w, 1))
    elif kind == 2:
        _png(root / cls / "mask" / f"{name}.png", _left_half(h, w, (200, 0, 0)))
    else:
        palette = Image.fromarray(_left_half(h, w, 1))
        palette.putpalette([0, 0, 0, 255, 255, 0] + [0] * 762)
        (root / cls / "mask").mkdir(parents=True, exist_ok=True)
        palette.save(root / cls / "mask" / f"{name}.png")


@pytest.fixture
def bijie(tmp_path: Path) -> Path:
    """25 landslide and 25 non-landslide samples in mixed formats and sizes."""
    root = tmp_path / "bijie"
    for i in range(25):
        _write_sample(root, "landslide", i)
        _write_sample(root, "non-landslide", i)
    return root


def test_scan_pairs_files_by_stem(bijie: Path) -> None:
    records = scan_bijie(bijie)
    assert len(records) == 50
    landslides = [r for r in records if r.landslide]
    assert len(landslides) == 25
    for r in records:
        image, dem = Path(r.image), Path(r.dem)
        assert image.stem == dem.stem == r.name.split("/")[1]
        assert image.parent.parent.name == ("landslide" if r.landslide else "non-landslide")
        assert image.is_absolute()
        if r.landslide:
            assert Path(r.mask).stem == image.stem
        else:
            assert r.mask is None


def test_load_chip_stacks_rgb_and_dem_in_raw_units(bijie: Path) -> None:
    for r in scan_bijie(bijie):
        stack, mask = load_chip(r, SIZE)
        assert stack.shape == (4, SIZE, SIZE) and stack.dtype == np.float32
        assert mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
        i = int(r.name[-3:])
        np.testing.assert_allclose(stack[:3, 5, 5], [10 + i, (10 + i) // 2, 245 - i], atol=1e-3)
        # DEMs keep their own units whatever the file type (8-bit PNGs hold plain numbers).
        expected_dem = i if i % 3 == 2 else 1000.0 + i
        np.testing.assert_allclose(stack[3], expected_dem, atol=1e-2)
        if r.landslide:
            # Every mask encoding reads as 1 on the left half, 0 on the right.
            assert mask[:, : SIZE // 2 - 1].all() and not mask[:, SIZE // 2 + 1 :].any()
            assert set(np.unique(mask)) == {0, 1}
        else:
            assert not mask.any()


def test_split_sizes_determinism_and_disjointness(bijie: Path) -> None:
    records = scan_bijie(bijie)
    splits = split_records(records, seed=1)
    assert {k: len(v) for k, v in splits.items()} == {"train": 32, "val": 8, "test": 10}
    for part in splits.values():  # stratified: both classes in the same share
        assert sum(r.landslide for r in part) * 2 == len(part)
    names = [{r.name for r in splits[k]} for k in ("train", "val", "test")]
    assert set.union(*names) == {r.name for r in records}
    assert sum(len(n) for n in names) == len(records)
    assert split_records(records[::-1], seed=1) == splits
    assert split_records(records, seed=2)["train"] != splits["train"]
    with pytest.raises(ValueError, match="fractions"):
        split_records(records, seed=1, fractions=(0.5, 0.5, 0.5))


def test_band_stats_and_normalize(bijie: Path) -> None:
    records = scan_bijie(bijie)[:10]
    stacks = np.stack([load_chip(r, SIZE)[0] for r in records]).astype(np.float64)
    mean, std = band_stats(records, SIZE)
    np.testing.assert_allclose(mean, stacks.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(std, stacks.std(axis=(0, 2, 3)), rtol=1e-6)
    normalised = normalize(stacks, mean, std)
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(normalised.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalised.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    np.testing.assert_allclose(normalize(stacks[0], mean, std), normalised[0])
    with pytest.raises(ValueError, match="band statistics"):
        normalize(stacks[:, :3], mean, std)


@pytest.mark.parametrize("bands", [BASE_BANDS, RGB_BANDS])
def test_chip_dataset_items(bijie: Path, bands: tuple[str, ...]) -> None:
    records = scan_bijie(bijie)
    mean, std = band_stats(records, SIZE, stack_from_bands(bands))
    dataset = ChipDataset(records, SIZE, mean, std, layers=bands)
    assert len(dataset) == 50
    x, y = dataset[0]
    assert x.shape == (len(bands), SIZE, SIZE) and y.shape == (1, SIZE, SIZE)
    assert x.dtype == y.dtype == torch.float32
    expected = normalize(load_chip(records[0], SIZE)[0][: len(bands)], mean, std)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)
    assert set(np.unique(y.numpy())) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="4 means and 4 standard deviations for 3 bands"):
        ChipDataset(records, SIZE, *band_stats(records, SIZE), layers=RGB_BANDS)


TERRAIN = stack_from_bands((*BASE_BANDS, "slope", "aspect_sin", "aspect_cos", "relative_elevation"))


def _plane_chips(root: Path, count: int) -> list:
    """Chips whose DEM rises eastwards by ``1 + i`` m per pixel: a plane of known slope."""
    for i in range(count):
        _png(root / "non-landslide" / "image" / f"p{i}.png", _image(SIZE, SIZE, 40 + i))
        ramp = np.tile(np.arange(SIZE, dtype=np.float32) * (1 + i) + 1500.0, (SIZE, 1))
        _tif(root / "non-landslide" / "dem" / f"p{i}.tif", ramp)
    return scan_bijie(root)


def test_terrain_bands_of_a_chip_are_derived_from_its_dem_in_ground_units(tmp_path: Path) -> None:
    (record,) = _plane_chips(tmp_path, 1)
    stack, _ = load_chip(record, SIZE, TERRAIN, resolution_m=2.0)
    assert stack.shape == (8, SIZE, SIZE) and stack.dtype == np.float32
    # 1 m of rise per 2 m pixel, to the chip's edges: no neighbours, so the terrain edge rule
    # (linear extrapolation) holds there, exact on a plane; no zero-filled cliff at the border.
    np.testing.assert_allclose(stack[4], np.degrees(np.arctan(0.5)), rtol=1e-6)
    np.testing.assert_allclose(stack[5], -1.0, atol=1e-6)  # faces west, downhill
    np.testing.assert_allclose(stack[6], 0.0, atol=1e-6)
    np.testing.assert_allclose(stack[7], 0.0, atol=1e-3)
    # The same function the mapper calls, on the chip's DEM at the chip's resolution.
    expected = compute_terrain(stack[3], 2.0, TERRAIN["dem"].terrain)
    np.testing.assert_array_equal(stack[4:], expected)
    coarser, _ = load_chip(record, SIZE, TERRAIN, resolution_m=4.0)
    np.testing.assert_allclose(coarser[4], np.degrees(np.arctan(0.25)), rtol=1e-6)
    with pytest.raises(InputError, match="slope.*need the chips' ground resolution"):
        load_chip(record, SIZE, TERRAIN)


def test_band_stats_cover_terrain_bands(tmp_path: Path) -> None:
    records = _plane_chips(tmp_path, 3)
    mean, std = band_stats(records, SIZE, TERRAIN, resolution_m=1.0)
    stacks = np.stack([load_chip(r, SIZE, TERRAIN, 1.0)[0] for r in records]).astype(np.float64)
    np.testing.assert_allclose(mean, stacks.mean(axis=(0, 2, 3)), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(std[4], stacks[:, 4].std(), rtol=1e-6)
    slopes = np.degrees(np.arctan([1.0, 2.0, 3.0]))
    assert mean[4] == pytest.approx(slopes.mean(), rel=1e-6)
    dataset = ChipDataset(records, SIZE, mean, std, TERRAIN, resolution_m=1.0)
    assert dataset[0][0].shape == (8, SIZE, SIZE)


def test_missing_dem_names_the_image(bijie: Path) -> None:
    (bijie / "non-landslide" / "dem" / "no004.png").unlink()
    with pytest.raises(InputError, match=r"no004\.png: no DEM"):
        scan_bijie(bijie)


def test_chips_without_dem_folders_train_rgb_models_only(bijie: Path) -> None:
    """Real inventories often come as images and masks alone."""
    for cls in ("landslide", "non-landslide"):
        shutil.rmtree(bijie / cls / "dem")
    records = scan_bijie(bijie)
    assert records and all(record.dem is None for record in records)
    stack, _ = load_chip(records[0], SIZE, stack_from_bands(RGB_BANDS))
    assert stack.shape == (3, SIZE, SIZE)
    with pytest.raises(InputError, match=r"no DEM .* need elevation; .* --bands rgb"):
        load_chip(records[0], SIZE)


def test_missing_mask_names_the_image(bijie: Path) -> None:
    next((bijie / "landslide" / "mask").glob("la007.*")).unlink()
    with pytest.raises(InputError, match=r"la007\.tif: no mask"):
        scan_bijie(bijie)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_file_is_named(bijie: Path, damage: str) -> None:
    broken = bijie / "landslide" / "image" / "la002.png"
    content = broken.read_bytes()
    broken.write_bytes(b"not a png at all" if damage == "garbage" else content[: len(content) // 2])
    record = next(r for r in scan_bijie(bijie) if r.image == str(broken))
    with pytest.raises(InputError, match=r"la002\.png: cannot read"):
        load_chip(record, SIZE)


def test_mask_size_mismatch_is_named(bijie: Path) -> None:
    mask = bijie / "landslide" / "mask" / "la000.png"
    _png(mask, np.zeros((10, 10), np.uint8))
    record = next(r for r in scan_bijie(bijie) if r.mask == str(mask))
    with pytest.raises(InputError, match=r"la000\.png: mask is 10x10 px but its image"):
        load_chip(record, SIZE)


def test_empty_dataset_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "landslide" / "image").mkdir(parents=True)
    with pytest.raises(InputError, match="no chips found"):
        scan_bijie(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        scan_bijie(tmp_path / "missing")
    with pytest.raises(InputError, match="empty"):
        band_stats([], SIZE)
