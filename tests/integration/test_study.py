"""``lsmap study`` on a local Ray cluster: runs in parallel, three filled tables, figure, resume.

A subset grid (U-Net++ with 2 losses, then 2 attention models with its best loss) keeps the test
near a minute on two CPUs while exercising all three tables: the full grid would train 15 runs,
each paying Ray Train's start-up, and the grid's size changes nothing the test checks.
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.study.tables import METRIC_COLUMNS
from pipelines.synthetic.writers import write_chips

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]

ARCHS = ("unetpp",)
LOSSES = ("bce", "dice")
ATTENTION = ("unetpp_sa", "unetpp_ca")
TINY = [
    "--epochs=2",
    "--workers=1",
    "--size=32",
    "--base-width=4",
    "--depth=3",
    "--batch-size=8",
    "--lr=3e-3",
    "--dropout=0",
]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _metrics(study: Path, arch: str, loss: str) -> dict:
    return json.loads((study / "runs" / f"{arch}-{loss}" / "metrics.json").read_text())


def test_small_study_fills_every_table_in_parallel_and_resumes(tmp_path, capsys):
    chips = write_chips(tmp_path / "chips", count=48, size=32, seed=2)
    study = tmp_path / "study"
    argv = ["study", "--data", str(chips), "--out", str(study), *TINY]
    argv += ["--archs", ",".join(ARCHS), "--losses", ",".join(LOSSES)]
    argv += ["--attention", ",".join(ATTENTION)]

    started = time.monotonic()
    assert main(argv) == 0
    wall = time.monotonic() - started
    printed = capsys.readouterr().out

    # Every run is a Ray task and the cluster holds two at once: the study takes clearly less
    # time than its runs one after the other.
    run_seconds = [float(s) for s in re.findall(r"^\[\d+/\d+\] \S+: .*, (\d+) s$", printed, re.M)]
    assert len(run_seconds) == len(ARCHS) * len(LOSSES) + len(ATTENTION)
    assert wall < 0.8 * sum(run_seconds)

    # Table 1: test mIoU of every model with every loss, as each run recorded it.
    table1 = _csv(study / "table1.csv")
    assert [row["model"] for row in table1] == list(ARCHS)
    for row in table1:
        assert list(row) == ["model", *LOSSES]
        for loss in LOSSES:
            assert float(row[loss]) == _metrics(study, row["model"], loss)["test"]["miou"]

    # Table 2: each model's loss of best validation mIoU, with the six test metrics.
    best = {
        arch: max(LOSSES, key=lambda loss: _metrics(study, arch, loss)["best_val"]["miou"])
        for arch in ARCHS
    }
    table2 = _csv(study / "table2.csv")
    assert [(row["model"], row["loss"]) for row in table2] == list(best.items())

    # Table 3: U-Net++ and its attention variants, all with U-Net++'s best loss.
    table3 = _csv(study / "table3.csv")
    assert [(row["model"], row["loss"]) for row in table3] == [
        (arch, best["unetpp"]) for arch in ("unetpp", *ATTENTION)
    ]
    for row in table2 + table3:
        assert list(row) == list(METRIC_COLUMNS)
        test = _metrics(study, row["model"], row["loss"])["test"]
        for name in METRIC_COLUMNS[3:]:
            assert 0.0 <= float(row[name]) <= 1.0  # every cell filled with a number
            assert float(row[name]) == test[name]

    markdown = (study / "tables.md").read_text()
    assert markdown.count("| U-Net++ + SA |") == 1
    assert all(f"## Table {n}." in markdown for n in (1, 2, 3))
    assert "n/a" not in markdown
    assert (study / "loss_curves.png").read_bytes().startswith(b"\x89PNG")
    for arch, loss in [(a, x) for a in ARCHS for x in LOSSES] + [
        (a, best["unetpp"]) for a in ATTENTION
    ]:
        run = study / "runs" / f"{arch}-{loss}"
        assert {"model.lsmap", "metrics.json", "loss_curve.png"} <= {p.name for p in run.iterdir()}
        assert len(_metrics(study, arch, loss)["history"]) == 2

    # A rerun trains nothing again (no epoch is redone) and rebuilds the same tables.
    histories = {p: json.loads(p.read_text())["history"] for p in study.glob("runs/*/metrics.json")}
    assert main(argv) == 0
    assert capsys.readouterr().out.count("finished earlier") == len(histories)
    for path, history in histories.items():
        assert json.loads(path.read_text())["history"] == history
    assert (study / "tables.md").read_text() == markdown
