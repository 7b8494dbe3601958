"""The viewer's web app: titiler tile servers for the probability COG and Zarr, the polygons as
GeoJSON, and our own Leaflet page, in one FastAPI application."""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlencode

import attr
import xarray as xr
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from morecantile import TileMatrixSets
from morecantile import tms as default_tms
from titiler.core.dependencies import DefaultDependency
from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
from titiler.core.factory import ColorMapFactory, TilerFactory
from titiler.extensions import wmtsExtension
from titiler.xarray.factory import TilerFactory as XarrayTilerFactory
from titiler.xarray.io import Reader as XarrayReader

from pipelines import storage
from pipelines.mapping.output import VARIABLE
from pipelines.serve.outputs import MapOutputs, load_outputs

COLORMAP = "inferno"
# Web map clients (Leaflet, QGIS's XYZ and WMTS sources) all speak Web Mercator tiles; one tile
# matrix set keeps WMTS capabilities short.
TILE_MATRIX_SET = "WebMercatorQuad"


def create_app(out: str) -> FastAPI:
    """The viewer app for the finished map output ``out`` (raises InputError if it is not one)."""
    outputs = load_outputs(out)
    storage.configure_gdal()
    app = FastAPI(
        title="lsmap viewer",
        description=f"Landslide probability and polygons of {storage.redact(outputs.root)}",
    )
    add_exception_handlers(app, DEFAULT_STATUS_CODES)
    supported = TileMatrixSets({TILE_MATRIX_SET: default_tms.get(TILE_MATRIX_SET)})
    layers = []
    if outputs.zones:
        # The class COG carries its colour table, which titiler applies as it is.
        zones_path = storage.gdal_path(outputs.zones.cog)
        zones = TilerFactory(
            path_dependency=lambda: zones_path,
            supported_tms=supported,
            extensions=[wmtsExtension(layer_identifier_provider=lambda _: "lsmap_zones")],
            add_viewer=False,
            router_prefix="/zones",
        )
        app.include_router(zones.router, prefix="/zones", tags=["Susceptibility zones"])
        layers.append(_layer("zones", "Susceptibility zones", {}))
    if outputs.cog:
        cog_path = storage.gdal_path(outputs.cog)
        low, high = _cog_probability_range(cog_path)
        render = {"rescale": f"{low},{high}", "colormap_name": COLORMAP}
        cog = TilerFactory(
            path_dependency=lambda: cog_path,
            supported_tms=supported,
            get_renders=lambda _: {"probability": dict(render)},
            extensions=[wmtsExtension(layer_identifier_provider=lambda _: "lsmap_cog")],
            add_viewer=False,
            router_prefix="/cog",
        )
        app.include_router(cog.router, prefix="/cog", tags=["Probability COG"])
        layers.append(_layer("cog", "Probability (COG)", render))
    zarr_render = {"rescale": "0,1", "colormap_name": COLORMAP}
    zarr = XarrayTilerFactory(
        reader=ProbabilityZarrReader,
        path_dependency=lambda: outputs.zarr,
        reader_dependency=ProbabilityVariable,
        supported_tms=supported,
        get_renders=lambda _: {"probability": dict(zarr_render)},
        extensions=[wmtsExtension(layer_identifier_provider=lambda _: "lsmap_zarr")],
        add_viewer=False,
        router_prefix="/zarr",
    )
    app.include_router(zarr.router, prefix="/zarr", tags=["Probability Zarr"])
    layers.append(_layer("zarr", "Probability (Zarr)", zarr_render))
    app.include_router(ColorMapFactory().router, tags=["Colormaps"])
    app.state.layers = layers

    @app.get("/api/map.json")
    def map_description(request: Request) -> dict:
        """What the page shows: layers (first = default), polygons, legend, WMTS addresses."""
        base = str(request.base_url).rstrip("/")
        return {
            "title": _title(outputs),
            "layers": [{**layer, "tilejson": base + layer["tilejson"]} for layer in layers],
            "polygons": f"{base}/polygons.geojson" if outputs.polygons else None,
            "legend": {
                "title": "Landslide probability",
                "min": 0,
                "max": 1,
                "image": f"{base}/colorMaps/{COLORMAP}?f=png&width=256&height=12",
            },
            "zones": _zones_legend(outputs.zones.document) if outputs.zones else None,
            "wmts": {layer["id"]: f"{base}/{layer['id']}/WMTSCapabilities.xml" for layer in layers},
        }

    @app.get("/polygons.geojson")
    def polygons() -> Response:
        """The landslide polygons with all their attributes, in longitude/latitude."""
        if outputs.polygons is None:
            return JSONResponse({"detail": "this map run wrote no polygons"}, status_code=404)
        return Response(_polygons_geojson(outputs.polygons), media_type="application/geo+json")

    static = resources.files("pipelines.serve") / "static"
    app.mount("/", StaticFiles(directory=str(static), html=True), name="static")
    return app


def _layer(layer_id: str, label: str, render: dict) -> dict:
    # 256 px tiles: what Leaflet and XYZ clients expect at each zoom level.
    query = urlencode({**render, "tilesize": 256})
    return {
        "id": layer_id,
        "label": label,
        "tilejson": f"/{layer_id}/{TILE_MATRIX_SET}/tilejson.json?{query}",
    }


def _zones_legend(document: dict) -> dict:
    """The zones' legend: a swatch, a name and a probability range per class, highest first."""
    limits = [0.0, *document["thresholds"], 1.0]
    classes = [
        {
            "name": name,
            "colour": colour,
            "range": f"{limits[k]:.3f} - {limits[k + 1]:.3f}",
        }
        for k, (name, colour) in enumerate(zip(document["names"], document["colours"], strict=True))
    ]
    return {"title": f"Susceptibility ({document['method']})", "classes": classes[::-1]}


def _title(outputs: MapOutputs) -> str:
    return f"lsmap: {storage.redact(outputs.root.rstrip('/').rsplit('/', 1)[-1])}"


def _cog_probability_range(path: str) -> tuple[float, float]:
    """The stored values meaning probability 0 and 1: uint8 COGs store round(p * 254) and say so
    with a scale (GDAL's band scale or a ``scale`` tag); float COGs store p."""
    import rasterio

    with rasterio.open(path) as src:
        scale, offset = src.scales[0], src.offsets[0]
        if scale == 1 and "scale" in src.tags(1):
            scale, offset = float(src.tags(1)["scale"]), float(src.tags(1).get("offset", 0))
    return (0 - offset) / scale, (1 - offset) / scale


def _polygons_geojson(uri: str) -> str:
    import geopandas

    if uri.lower().endswith((".parquet", ".geoparquet")):
        frame = geopandas.read_parquet(io.BytesIO(storage.read_bytes(uri)))
    else:
        frame = geopandas.read_file(storage.gdal_path(uri))
    if frame.crs is not None:
        frame = frame.to_crs("EPSG:4326")
    return frame.to_json(drop_id=True, default=_json_value)


def _json_value(value: object) -> object:
    """JSON for the attribute types GeoParquet holds and JSON lacks (times, arrays)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _open_probability(src_path: str, **_: object) -> xr.Dataset:
    """Open the probability store through lsmap's storage layer (local or S3, as the mapper
    wrote it); titiler's own opener knows neither our S3 settings nor the uint8 encoding."""
    return xr.open_zarr(
        storage.zarr_store(src_path, read_only=True), consolidated=False, decode_coords="all"
    )


@attr.s
class ProbabilityZarrReader(XarrayReader):
    """titiler.xarray's reader over a map output's probability store."""

    opener = attr.ib(default=_open_probability)


@dataclass
class ProbabilityVariable(DefaultDependency):
    """The store holds one variable to show; clients need not name it."""

    def as_dict(self, exclude_none: bool = True) -> dict:
        return {"variable": VARIABLE}
