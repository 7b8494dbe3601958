"""What the viewer finds in a finished map output."""

from __future__ import annotations

import pytest
from probability_stores import write_probability_store

from pipelines.errors import InputError
from pipelines.mapping.output import write_manifest
from pipelines.serve.outputs import load_outputs


def _finished(root: str, outputs: dict, status: str = "complete") -> None:
    layout, _ = write_probability_store(root, "uint8")
    write_manifest(layout, {"status": status, "outputs": {"probability": layout.zarr, **outputs}})


def test_a_region_exported_in_blocks_is_served_through_its_mosaic(tmp_path):
    root = str(tmp_path / "map")
    blocks = {"r0_c0": f"{root}/probability/r0_c0.tif", "r0_c512": "probability/r0_c512.tif"}
    _finished(root, {"cog": {**blocks, "mosaic": f"{root}/probability.vrt"}})
    outputs = load_outputs(root)
    assert outputs.cog == f"{root}/probability.vrt"
    assert outputs.zarr == f"{root}/probability.zarr" and outputs.polygons is None


def test_a_single_cog_is_served_and_an_unfinished_run_is_refused(tmp_path):
    root = str(tmp_path / "map")
    _finished(root, {"cog": "probability.tif"})  # relative entries resolve against the output
    assert load_outputs(root).cog == f"{root}/probability.tif"
    _finished(root, {}, status="running")
    with pytest.raises(InputError, match="unfinished map run"):
        load_outputs(root)
