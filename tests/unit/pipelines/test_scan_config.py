"""Watch lists: strict parsing with errors that name the file and the key; cron schedules."""

from __future__ import annotations

import textwrap

import pytest

from pipelines.errors import InputError
from pipelines.scan.config import Event, StacImagery, load_watchlist, parse_watchlist
from pipelines.scan.cron import validate_cron

VALID = """
regions:
  - name: bijie-north
    aoi: {bbox: [530000, 3020000, 531000, 3021000], crs: EPSG:32648}
    imagery: s3://bucket/bijie-north/imagery/
    dem: s3://bucket/bijie-north/dem.tif
    model: s3://bucket/models/unet/
    output: s3://bucket/scans/
    threshold: 0.5
    schedule: "0 */6 * * *"
"""


def _with(**changes: str) -> str:
    """The valid watch list with some region lines replaced (key -> new line, '' deletes)."""
    lines = []
    for line in VALID.splitlines():
        key = line.strip().lstrip("- ").split(":")[0]
        if key in changes:
            if changes[key]:
                lines.append(line[: line.index(key)] + changes[key])
        else:
            lines.append(line)
    return "\n".join(lines)


def _error(text: str, uri: str = "watch.yaml") -> str:
    with pytest.raises(InputError) as caught:
        parse_watchlist(text, uri)
    return str(caught.value)


def test_valid_watch_list_with_defaults():
    [region] = parse_watchlist(VALID, "watch.yaml").regions
    assert region.name == "bijie-north"
    assert region.aoi.bbox == (530000.0, 3020000.0, 531000.0, 3021000.0)
    assert region.aoi.crs == "EPSG:32648"
    assert region.root == "s3://bucket/scans/bijie-north"
    assert region.before_threshold == region.threshold == 0.5
    assert region.min_area_m2 == 0.0
    assert region.mapping.workers == 1 and region.mapping.chunk == 1024


def test_optional_keys_are_read():
    text = VALID + textwrap.indent(
        "before_threshold: 0.3\nmin_area_m2: 50\n"
        "mapping: {workers: 2, gpus_per_worker: 0.5, batch_size: 32, chunk: 512, overlap: 16, "
        "precision: bf16}\n",
        "    ",
    )
    [region] = parse_watchlist(text, "w.yaml").regions
    assert region.before_threshold == 0.3 and region.min_area_m2 == 50
    assert (region.mapping.workers, region.mapping.gpus_per_worker) == (2, 0.5)
    assert (region.mapping.batch_size, region.mapping.chunk, region.mapping.overlap) == (
        32,
        512,
        16,
    )
    assert region.mapping.precision == "bf16"


def test_stac_imagery_and_event_are_read(tmp_path):
    api = _with(
        imagery="imagery: {stac_api: 'http://127.0.0.1:8000', collection: s2, "
        "max_cloud_cover: 20, days: 30, asset: visual}"
    )
    text = api + "\n    event: {id: rain-2024, date: 2024-07-14}\n"
    [region] = parse_watchlist(text, "w.yaml").regions
    assert region.imagery == StacImagery(
        api="http://127.0.0.1:8000", collection="s2", max_cloud_cover=20, days=30, asset="visual"
    )
    assert region.event == Event(id="rain-2024", date="2024-07-14")
    catalog = _with(imagery="imagery: {stac_catalog: event/catalog.json, datetime: 2024-07-01/..}")
    [region] = parse_watchlist(catalog, str(tmp_path / "w.yaml")).regions
    assert region.imagery.catalog == str(tmp_path / "event" / "catalog.json")
    assert region.imagery.datetime == "2024-07-01/.." and region.imagery.api is None
    assert region.event == Event()
    bands = _with(
        imagery="imagery: {stac_catalog: c.json, layers: {ms: [red, green, blue, nir]}, "
        "mask: {asset: scl, codes: [3, 8, 9, 10]}}"
    )
    [region] = parse_watchlist(bands, "w.yaml").regions
    assert region.imagery.layers == (("ms", ("red", "green", "blue", "nir")),)
    assert (region.imagery.mask_asset, region.imagery.mask_codes) == ("scl", (3, 8, 9, 10))


@pytest.mark.parametrize(
    "imagery,where,problem",
    [
        ("{collection: s2}", ".imagery", "exactly one of 'stac_api'"),
        ("{stac_api: a, stac_catalog: b}", ".imagery", "exactly one of 'stac_api'"),
        ("{stac_api: ftp://x}", ".imagery.stac_api", "http(s) URL"),
        ("{stac_catalog: c.json, max_cloud_cover: 120}", ".max_cloud_cover", "[0.0, 100.0]"),
        ("{stac_catalog: c.json, days: 0}", ".imagery.days", ">= 1"),
        ("{stac_catalog: c.json, days: 3, datetime: 2024-07-01/..}", ".imagery", "not both"),
        ("{stac_catalog: c.json, datetime: July}", ".imagery.datetime", "not an ISO 8601"),
        ("{stac_catalog: c.json, cloud: 3}", ".imagery", "unknown key(s) 'cloud'"),
        ("{stac_catalog: c.json, asset: v, layers: {ms: [red]}}", ".imagery", "not both"),
        ("{stac_catalog: c.json, layers: {ms: [1, 2]}}", ".imagery.layers", "asset key(s)"),
        ("{stac_catalog: c.json, mask: {asset: scl}}", ".imagery.mask", "codes: [CLASS"),
    ],
)
def test_bad_stac_imagery_names_the_key(imagery, where, problem):
    message = _error(_with(imagery=f"imagery: {imagery}"))
    assert where in message and problem in message
    assert "expected a date YYYY-MM-DD" in _error(VALID + "    event: {date: 14/07/2024}\n")


@pytest.mark.parametrize(
    "text,where,problem",
    [
        (_with(threshold=""), "regions[0] (bijie-north).threshold", "missing"),
        (_with(schedule=""), "regions[0] (bijie-north).schedule", "missing"),
        (
            _with(threshold="threshold: high"),
            "regions[0] (bijie-north).threshold",
            "expected int or float",
        ),
        (_with(threshold="threshold: 1.5"), "regions[0] (bijie-north).threshold", "[0.0, 1.0]"),
        (_with(threshold="threshold: true"), "regions[0] (bijie-north).threshold", "bool"),
        (_with(schedule='schedule: "0 */6 * *"'), "regions[0] (bijie-north).schedule", "4 fields"),
        (
            _with(schedule='schedule: "61 * * * *"'),
            "regions[0] (bijie-north).schedule",
            "outside 0-59",
        ),
        (
            _with(schedule="schedule: '@sometimes'"),
            "regions[0] (bijie-north).schedule",
            "unknown macro",
        ),
        (_with(dem="dem: s3://bucket/../other/dem.tif"), "regions[0] (bijie-north).dem", "'..'"),
        (_with(output="output: ../../elsewhere"), "regions[0] (bijie-north).output", "'..'"),
        (_with(model="model: gs://bucket/model"), "regions[0] (bijie-north).model", "scheme"),
        (_with(name="name: ../escape"), "regions[0].name", "letters, digits"),
        (_with(name="name: a b"), "regions[0].name", "letters, digits"),
        (VALID + "    colour: red\n", "regions[0] (bijie-north)", "unknown key(s) 'colour'"),
        (VALID + "extra: 1\n", "top level", "unknown key(s) 'extra'"),
        (VALID + "    threshold: 0.4\n", "", "appears twice"),
        (_with(aoi="aoi: {bbox: [1, 2, 3], crs: EPSG:32648}"), ".aoi.bbox", "4 numbers"),
        (_with(aoi="aoi: {bbox: [3, 2, 1, 4], crs: EPSG:32648}"), ".aoi.bbox", "empty"),
        (_with(aoi="aoi: {bbox: [1, 2, 3, 4], crs: EPSG:999999}"), ".aoi.crs", "not a coordinate"),
        (_with(aoi="aoi: {bbox: [1, 2, 3, 4]}"), ".aoi.crs", "missing"),
        (VALID + "    before_threshold: 0.7\n", ".before_threshold", "[0.0, 0.5]"),
        (VALID + "    mapping: {workers: 0}\n", ".mapping.workers", ">= 1"),
        (VALID + "    mapping: {gpus: 1}\n", ".mapping", "unknown key(s) 'gpus'"),
        (VALID + "    mapping: {precision: fp16}\n", ".mapping.precision", "auto, fp32, bf16"),
        ("regions: []\n", "regions", "at least one region"),
        ("regions: {name: x}\n", "regions", "expected list"),
        ("- just a list\n", "top level", "expected a mapping"),
        ("regions: [\n", "", "not valid YAML"),
        (VALID + VALID.split("\n", 2)[2], "regions[1].name", "used twice"),
    ],
)
def test_bad_watch_lists_name_file_key_and_problem(text, where, problem):
    message = _error(text)
    assert message.startswith("watch.yaml: ")
    assert where in message
    assert problem in message


def test_relative_local_paths_are_read_against_the_watch_list(tmp_path):
    path = tmp_path / "lists" / "watch.yaml"
    path.parent.mkdir()
    path.write_text(
        _with(imagery="imagery: imagery/", output="output: out", dem="dem: /abs/dem.tif")
    )
    [region] = load_watchlist(str(path)).regions
    assert region.imagery == str(tmp_path / "lists" / "imagery")
    assert region.output == str(tmp_path / "lists" / "out")
    assert region.dem == "/abs/dem.tif"
    assert region.model == "s3://bucket/models/unet/"


def test_missing_watch_list_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no-such.yaml"):
        load_watchlist(str(tmp_path / "no-such.yaml"))


def test_select_and_crontab():
    text = VALID + VALID.split("\n", 2)[2].replace("bijie-north", "bijie-south").replace(
        "0 */6 * * *", "@daily"
    )
    watchlist = parse_watchlist(text, "s3://bucket/watch.yaml")
    assert [r.name for r in watchlist.select(["bijie-south"])] == ["bijie-south"]
    assert len(watchlist.select(None)) == 2
    with pytest.raises(InputError, match="no region named nowhere"):
        watchlist.select(["nowhere"])
    assert watchlist.crontab("lsmap") == [
        "0 */6 * * * lsmap scan --config s3://bucket/watch.yaml --region bijie-north",
        "@daily lsmap scan --config s3://bucket/watch.yaml --region bijie-south",
    ]


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "0 */6 * * *",
        "5,35 0-23/2 1-15 jan-jun mon-fri",
        "0 0 1 1 0",
        "@hourly",
        "@DAILY",
    ],
)
def test_valid_cron(expression):
    validate_cron(expression)


@pytest.mark.parametrize(
    "expression,problem",
    [
        ("* * * *", "4 fields"),
        ("0 0 * * * *", "6 fields"),  # seconds: not crontab, not Kubernetes
        ("60 * * * *", "outside 0-59"),
        ("* 24 * * *", "outside 0-23"),
        ("* * 0 * *", "outside 1-31"),
        ("* * * 13 *", "outside 1-12"),
        ("* * * * 7", "outside 0-6"),
        ("*/0 * * * *", "at least 1"),
        ("5-1 * * * *", "backwards"),
        ("5/10 * * * *", "as a range"),
        ("* * ? * *", "is not N"),
        ("* * L * *", "not a number or a name"),
        ("* * * * mon#2", "is not N"),
        ("* * * foo *", "not a number or a name"),
        ("@reboot", "unknown macro"),
    ],
)
def test_invalid_cron(expression, problem):
    with pytest.raises(ValueError, match=problem.replace("?", r"\?")):
        validate_cron(expression)
