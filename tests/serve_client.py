"""``lsmap serve`` run as a user runs it (a subprocess on a free port), and the requests a web map
or QGIS makes of it."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[str, bytes]:
    """``(content type, body)`` of a GET that must answer 200."""
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200, url
        return response.headers["content-type"], response.read()


def get_json(url: str):
    return json.loads(get(url)[1])


@contextlib.contextmanager
def served(argv: list[str], port: int, *, cwd: str | Path | None = None, env=None) -> Iterator[str]:
    """Run a command that serves a map on ``port`` (``lsmap serve ...``) until the block ends;
    yields the base URL once the map description answers. The command's whole process group is
    stopped at the end (a shell's children too)."""
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                try:
                    get(f"{base}/api/map.json")
                    break
                except (urllib.error.URLError, ConnectionError):
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise AssertionError(f"lsmap serve did not start:\n{log.read()}") from None
                    time.sleep(0.2)
            yield base
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)


def lsmap_serve(
    out: str, *, cwd: str | Path | None = None
) -> contextlib.AbstractContextManager[str]:
    """``lsmap serve OUT`` on a free port, from ``cwd``; a context manager yielding the base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "pipelines", "serve", out, "--port", str(port)]
    return served(argv, port, cwd=cwd)


def centre_tile(tilejson: dict) -> tuple[int, int, int]:
    """The Web Mercator tile (z, x, y) at the centre of the data, at its native zoom."""
    west, south, east, north = tilejson["bounds"]
    lon, lat, z = (west + east) / 2, (south + north) / 2, tilejson["maxzoom"]
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def tile_url(tilejson: dict, z: int, x: int, y: int, fmt: str) -> str:
    path, query = tilejson["tiles"][0].split("?", 1)
    path = path.format(z=z, x=x, y=y)
    return f"{path}.{fmt}?{query}"


def centre_tiles(base: str) -> dict[str, bytes]:
    """The PNG tile at the centre of the data of every layer the viewer offers, by layer id."""
    tiles = {}
    for layer in get_json(f"{base}/api/map.json")["layers"]:
        tilejson = get_json(layer["tilejson"])
        content_type, body = get(tile_url(tilejson, *centre_tile(tilejson), "png"))
        assert content_type == "image/png", layer["id"]
        tiles[layer["id"]] = body
    return tiles
