"""Every command shown in README.md and docs/*.md runs, so the docs cannot drift from the code.

Commands are the contents of fenced ``bash`` blocks, and the ``$ ``-prompted lines (with their
``\\`` continuations) of ``console`` blocks. The files run in order, README.md first, in one
temporary working directory (with ``.venv`` linked into it), each block as one ``bash -e`` script
that must exit 0, so later blocks use what earlier ones made (``data/``, ``runs/``, ``maps/``).
Commands that use Ray join one head node started for the docs (``RAY_ADDRESS``), as they would
on a cluster.

An HTML comment right before a block (only blank lines between) changes how it runs:

- ``<!-- docs-test: skip (REASON) -->``: not run (needs a cluster, a GPU or a cloud account, or
  runs a whole suite). Every skip is reported by pytest with its reason (``pytest -rs``).
- ``<!-- docs-test: small`` then lines ``OLD => NEW`` then ``-->``: run with each literal ``OLD``
  replaced by ``NEW``, so the docs may show realistic sizes while the test stays fast. A
  replacement whose ``OLD`` is not in the block fails the test, so overrides cannot go stale.
- ``<!-- docs-test: serve -->``: the block is one ``lsmap serve OUT`` command, a server that runs
  until stopped. It runs in the background on a free port (any ``--port`` shown is replaced) until
  its page and a tile of every layer load, then again from another working directory with OUT
  relative to that one, and is stopped.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from clusters.head import ray_head
from serve_client import centre_tiles, free_port, get, served

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!--\s*docs-test:(.*)-->", re.DOTALL)
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    """One runnable block of a doc file."""

    path: Path
    line: int
    script: str
    skip: str | None = None
    replacements: tuple[tuple[str, str], ...] = field(default=())
    serve: bool = False

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def console_commands(text: str) -> str:
    """The ``$ `` commands of a console transcript, continuations included, output dropped."""
    commands, continuing = [], False
    for line in text.splitlines():
        if continuing or line.startswith("$ "):
            commands.append(line if continuing else line[2:])
            continuing = line.rstrip().endswith("\\")
    return "\n".join(commands)


def parse_marker(text: str, where: str) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """``(skip reason, replacements)`` from a marker's text; unknown markers are errors
    (``serve`` is read by :func:`blocks_of`)."""
    kind, _, rest = text.strip().partition("\n")
    kind = kind.strip()
    if kind.startswith("skip"):
        reason = re.fullmatch(r"skip\s*\((.+)\)", kind)
        if not reason:
            raise ValueError(f"{where}: write the skip marker as 'docs-test: skip (reason)'")
        return reason.group(1).strip(), ()
    if kind == "small":
        pairs = []
        for line in filter(str.strip, rest.splitlines()):
            old, arrow, new = line.partition("=>")
            if not arrow or not old.strip():
                raise ValueError(f"{where}: 'small' lines must read 'OLD => NEW', got {line!r}")
            pairs.append((old.strip(), new.strip()))
        if not pairs:
            raise ValueError(f"{where}: a 'small' marker needs at least one 'OLD => NEW' line")
        return None, tuple(pairs)
    raise ValueError(f"{where}: unknown docs-test marker {kind!r} (use 'skip (...)' or 'small')")


def blocks_of(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        language, body = match.group(1), match.group(2)
        if language not in ("bash", "console"):
            continue
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip()
        # The comment that ends right before the block, if any.
        marker = (
            MARKER.fullmatch(before[before.rfind("<!--") :]) if before.endswith("-->") else None
        )
        serve = marker is not None and marker.group(1).strip() == "serve"
        skip, replacements = (
            parse_marker(marker.group(1), f"{path.name}:{line}")
            if marker and not serve
            else (None, ())
        )
        script = console_commands(body) if language == "console" else body
        blocks.append(Block(path, line, script, skip, replacements, serve))
    return blocks


BLOCKS = [block for path in DOC_FILES for block in blocks_of(path)]


def _environment() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        "RAY_AUTH_MODE": "disabled",
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One directory for all the docs, as a reader following them in order would have."""
    root = tmp_path_factory.mktemp("docs")
    (root / ".venv").symlink_to(ROOT / ".venv")
    return root


@pytest.fixture(scope="module")
def ray_address(workdir):
    """One Ray head for every documented command (each would otherwise start and stop a local
    cluster of its own), started in the docs' directory so relative paths mean the same to its
    workers; commands join it through RAY_ADDRESS, as on a cluster."""
    with ray_head(cwd=workdir, env=_environment()) as head:
        yield head.address


def test_docs_have_commands():
    run = [block for block in BLOCKS if block.skip is None]
    assert run and all(block.script.strip() for block in run)
    assert {block.path.name for block in run} >= {"README.md"}


@pytest.mark.parametrize("block", BLOCKS, ids=lambda block: block.id)
def test_documented_commands_run(block, workdir, ray_address):
    if block.skip is not None:
        pytest.skip(f"{block.id}: {block.skip}")
    script = block.script
    if block.serve:
        _serve_from_here_and_elsewhere(block, workdir)
        return
    for old, new in block.replacements:
        assert old in script, f"{block.id}: the 'small' override {old!r} is not in the block"
        script = script.replace(old, new)
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=workdir,
        env={**_environment(), "RAY_ADDRESS": ray_address},
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"{block.id} exited {result.returncode}\n--- script\n{script}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )


def _serve_from_here_and_elsewhere(block: Block, workdir: Path) -> None:
    """Run a documented ``lsmap serve OUT`` in the docs' directory, then from another one with
    OUT relative to it; each time the page and a tile of every layer must load."""
    command = shlex.split(block.script)
    assert command[:2] == ["lsmap", "serve"] and "\n" not in block.script.strip(), (
        f"{block.id}: a 'serve' block holds one `lsmap serve OUT` command"
    )
    if "--port" in command:
        del command[command.index("--port") : command.index("--port") + 2]
    elsewhere = Path(tempfile.mkdtemp(dir=workdir.parent))
    out_from_elsewhere = os.path.relpath(workdir / command[2], elsewhere)
    for cwd, out in ((workdir, command[2]), (elsewhere, out_from_elsewhere)):
        port = free_port()
        argv = [*command[:2], out, *command[3:], "--port", str(port)]
        with served(argv, port, cwd=cwd, env=_environment()) as base:
            content_type, page = get(f"{base}/")
            assert content_type.startswith("text/html") and b"<html" in page.lower()
            tiles = centre_tiles(base)
        assert tiles, f"{block.id}: no layer served from {cwd}"
