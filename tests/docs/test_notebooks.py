"""The notebooks in notebooks/ run top to bottom on this checkout, and are committed without outputs.

Each notebook is executed with nbclient in a kernel on this interpreter (the project's venv), from
notebooks/ as Jupyter would start it; the notebooks write only into temporary directories, which
go into one short-lived folder per notebook here (short: Ray puts its sockets under it too, and
socket paths are limited to 107 bytes). Notebooks run one at a time, so each kernel may use both
of a small machine's cores.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
KERNEL = "lsmap-docs-test"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec for this interpreter in a private JUPYTER_PATH, so no other Python is used."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "lsmap (test)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return root


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:4] == [
        "01_quickstart.ipynb",
        "02_study.ipynb",
        "03_explainability.ipynb",
        "04_object_storage.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel_env, monkeypatch):
    scratch = tempfile.TemporaryDirectory(prefix="lsnb-")
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_env))
    monkeypatch.setenv("TMPDIR", scratch.name)  # tempfile.mkdtemp in the notebooks, Ray
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    # A kernel starts as a user's would: without the test session's S3 endpoint and keys
    # (notebook 04 sets its own).
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    before = sorted(p.name for p in NOTEBOOKS_DIR.iterdir())
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=300,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    with scratch:
        client.execute()  # raises CellExecutionError, naming the cell, on any error

    # Figures must reach the notebook: a library call that switches matplotlib's backend would
    # silently hide every later plot.
    blind = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        and "plt.subplots(" in cell.source
        and not any("image/png" in output.get("data", {}) for output in cell.outputs)
    ]
    assert not blind, f"{path.name}: cells {blind} drew a figure that was not displayed"
    assert sorted(p.name for p in NOTEBOOKS_DIR.iterdir()) == before, "wrote into notebooks/"
