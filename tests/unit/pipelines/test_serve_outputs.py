"""What the viewer finds in a finished map output."""

from __future__ import annotations

import pytest
from probability_stores import write_probability_store

from pipelines.errors import InputError
from pipelines.mapping.output import OutputLayout, write_manifest
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


def test_a_moved_output_is_served_from_where_it_now_lives(tmp_path):
    """Manifests name files relative to the output folder, so moving the folder keeps it whole."""
    layout, _ = write_probability_store(str(tmp_path / "map"), "uint8")
    files = {
        "cog": layout.file("probability.tif"),
        "polygons": {"geoparquet": layout.file("p.parquet")},
    }
    recorded = layout.relative({"probability": layout.zarr, **files})
    assert recorded == {
        "probability": "probability.zarr",
        "cog": "probability.tif",
        "polygons": {"geoparquet": "p.parquet"},
    }
    write_manifest(layout, {"status": "complete", "outputs": recorded})
    moved = tmp_path / "elsewhere" / "map"
    moved.parent.mkdir()
    (tmp_path / "map").rename(moved)
    outputs = load_outputs(str(moved))
    assert outputs.zarr == f"{moved}/probability.zarr"
    assert (outputs.cog, outputs.polygons) == (f"{moved}/probability.tif", f"{moved}/p.parquet")


@pytest.mark.parametrize("former_root", ["demo-out/map", "/data/maps/map", "s3://bucket/map"])
def test_manifests_of_older_runs_resolve_against_the_folder_they_are_in(tmp_path, former_root):
    """Older manifests recorded ``--out`` as given: relative to the working directory of the run,
    or absolute where the folder no longer is."""
    root = str(tmp_path / "map")
    layout, _ = write_probability_store(root, "uint8")
    outputs = {
        "probability": f"{former_root}/probability.zarr",
        "cog": {"mosaic": f"{former_root}/probability.vrt"},
        "quicklook": f"{former_root}/quicklook.png",
    }
    write_manifest(layout, {"status": "complete", "outputs": outputs})
    assert layout.resolve(outputs) == {
        "probability": f"{root}/probability.zarr",
        "cog": {"mosaic": f"{root}/probability.vrt"},
        "quicklook": f"{root}/quicklook.png",
    }
    assert load_outputs(root).zarr == f"{root}/probability.zarr"


def test_only_files_under_the_output_folder_are_recorded_relative_to_it(tmp_path):
    layout = OutputLayout(str(tmp_path / "map"))
    with pytest.raises(ValueError, match="not under the output directory"):
        layout.relative(str(tmp_path / "mapping" / "probability.tif"))
