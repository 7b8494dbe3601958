"""Study tables from fabricated runs' metrics.json: best-loss choice, formatting, CSV, figure."""

from __future__ import annotations

import csv
import io
import json
import random

import pytest
import yaml

from pipelines.errors import InputError
from pipelines.study import RunMetrics, StudyConfig, build_tables
from pipelines.study.config import run_name
from pipelines.study.run import load_runs, write_outputs
from pipelines.study.tables import METRIC_COLUMNS, METRICS, add_band_table, best_model
from pipelines.terrain import TERRAIN_BANDS
from pipelines.training import TrainConfig

ARCHS = ("unet", "resunet", "unetpp")
LOSSES = ("bce", "focal", "dice", "wce")
ATTENTION = ("unetpp_sa", "unetpp_ca", "unetpp_sa_ca")


def _document(val_miou: float | None, test: dict[str, float | None], epochs: int = 3) -> dict:
    """A metrics.json as training writes it (only the parts the study reads matter)."""
    history = [
        {"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val_miou": 0.5}
        for e in range(1, epochs + 1)
    ]
    return {
        "config": {},
        "history": history,
        "best_epoch": epochs,
        "best_val": {"miou": val_miou, "f1": 0.5},
        "test": test,
    }


def _test_metrics(miou: float, auc: float | None = 0.9) -> dict[str, float | None]:
    return {
        "miou": miou,
        "auc": auc,
        "precision": 0.7,
        "recall": 0.6,
        "f1": 0.65,
        "accuracy": 0.95,
        "iou_landslide": 0.4,
    }


def _score(arch: str, loss: str, offset: float) -> float:
    return 0.5 + 0.001 * ARCHS.index(arch) + offset * (LOSSES.index(loss) + 1)


def _grid() -> dict[tuple[str, str], dict]:
    """Validation prefers dice for every base model; test mIoU would prefer wce (the last)."""
    documents = {}
    for arch in ARCHS:
        for loss in LOSSES:
            val = 0.8 if loss == "dice" else 0.6
            documents[arch, loss] = _document(val, _test_metrics(_score(arch, loss, 0.02)))
    # resunet is the best base model by validation mIoU, yet attention goes to U-Net++.
    documents["resunet", "dice"]["best_val"]["miou"] = 0.9
    for arch in ATTENTION:
        documents[arch, "dice"] = _document(0.7, _test_metrics(0.6 + 0.01 * ATTENTION.index(arch)))
    return documents


def _runs(documents) -> dict[tuple[str, str], RunMetrics]:
    return {
        key: RunMetrics.from_document(*key, document, run_name(*key))
        for key, document in documents.items()
    }


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_best_loss_is_chosen_by_validation_not_test_miou():
    tables = build_tables(_runs(_grid()), ARCHS, LOSSES, ATTENTION)

    assert tables.best_losses == {"unet": "dice", "resunet": "dice", "unetpp": "dice"}
    assert [(row["model"], row["loss"]) for row in tables.table2.rows] == [
        (arch, "dice") for arch in ARCHS
    ]
    row = tables.table2.rows[0]
    assert row["val_miou"] == 0.8
    assert row["miou"] == pytest.approx(_score("unet", "dice", 0.02))  # test, not validation
    # Table 1 holds every test mIoU and marks the chosen (not the highest) cell in bold.
    assert tables.table1.rows[1]["wce"] == pytest.approx(_score("resunet", "wce", 0.02))
    markdown = tables.table1.to_markdown()
    assert f"| **{_score('unet', 'dice', 0.02):.4f}** |" in markdown
    assert f"**{_score('unet', 'wce', 0.02):.4f}**" not in markdown


def test_attention_table_uses_unetpp_and_its_best_loss_even_when_another_base_wins():
    documents = _grid()
    documents["unetpp", "focal"]["best_val"]["miou"] = 0.85
    for arch in ATTENTION:
        documents[arch, "focal"] = documents.pop((arch, "dice"))

    tables = build_tables(_runs(documents), ARCHS, LOSSES, ATTENTION)

    assert (tables.best_base, tables.attention_loss) == ("resunet", "focal")
    assert [(row["model"], row["loss"]) for row in tables.table3.rows] == [
        ("unetpp", "focal"),
        *((arch, "focal") for arch in ATTENTION),
    ]
    assert "ResUNet was the best base model" in tables.table3.note
    assert tables.compared == (
        ("unet", "dice"),
        ("resunet", "dice"),
        ("unetpp", "focal"),
        *((arch, "focal") for arch in ATTENTION),
    )


def test_ties_go_to_the_first_loss_of_the_grid_and_nan_ranks_last():
    documents = _grid()
    for loss in LOSSES:
        documents["unet", loss]["best_val"]["miou"] = 0.7
    documents["unet", "bce"]["best_val"]["miou"] = None  # NaN in JSON
    runs = _runs(documents)

    assert build_tables(runs, ARCHS, LOSSES, ATTENTION).best_losses["unet"] == "focal"
    reordered = ("wce", "dice", "focal", "bce")
    assert build_tables(runs, ARCHS, reordered, ATTENTION).best_losses["unet"] == "wce"


def test_csv_columns_and_every_cell_filled():
    tables = build_tables(_runs(_grid()), ARCHS, LOSSES, ATTENTION)

    table1 = _rows(tables.table1.to_csv())
    assert list(table1[0]) == ["model", *LOSSES]
    assert [row["model"] for row in table1] == list(ARCHS)
    assert float(table1[2]["focal"]) == pytest.approx(_score("unetpp", "focal", 0.02), abs=0)
    for table, models in ((tables.table2, ARCHS), (tables.table3, ("unetpp", *ATTENTION))):
        rows = _rows(table.to_csv())
        assert list(rows[0]) == list(METRIC_COLUMNS)
        assert [row["model"] for row in rows] == list(models)
        for row in rows:
            assert all(float(row[name]) >= 0 for name in ("val_miou", *METRICS))
    assert set(METRICS) == {"miou", "auc", "precision", "recall", "f1", "accuracy"}


def test_markdown_uses_the_papers_names_four_decimals_and_marks_missing_values():
    documents = _grid()
    documents["unetpp_ca", "dice"]["test"]["auc"] = None  # a class absent from the test split
    tables = build_tables(_runs(documents), ARCHS, LOSSES, ATTENTION)

    header, _, *rows = tables.table3.to_markdown().splitlines()[4:]
    assert header == (
        "| Model | Loss | Val mIoU | mIoU | AUC | Precision | Recall | F1 | Accuracy |"
    )
    assert rows[2] == (
        "| U-Net++ + CA | Dice | 0.7000 | 0.6100 | n/a | 0.7000 | 0.6000 | 0.6500 | 0.9500 |"
    )
    assert _rows(tables.table3.to_csv())[2]["auc"] == ""
    assert tables.table1.to_markdown().splitlines()[4] == "| Model | BCE | Focal | Dice | WCE |"


def test_tables_do_not_depend_on_the_order_runs_finished_in():
    documents = _grid()
    keys = list(documents)
    random.Random(0).shuffle(keys)
    shuffled = {key: documents[key] for key in keys}
    settings = {**TrainConfig(data="chips", out="study").to_dict()}

    first = build_tables(_runs(documents), ARCHS, LOSSES, ATTENTION)
    second = build_tables(_runs(shuffled), ARCHS, LOSSES, ATTENTION)

    assert first.to_markdown(settings) == second.to_markdown(settings)


def test_missing_runs_and_incomplete_documents_are_named():
    documents = _grid()
    del documents["resunet", "wce"]
    with pytest.raises(InputError, match="no finished run.* resunet-wce"):
        build_tables(_runs(documents), ARCHS, LOSSES, ATTENTION)

    broken = _document(0.5, None)
    with pytest.raises(InputError, match="unet-bce: the run has no test metrics"):
        RunMetrics.from_document("unet", "bce", broken, "unet-bce")
    del broken["best_val"]
    with pytest.raises(InputError, match="x/metrics.json: not a complete"):
        RunMetrics.from_document("unet", "bce", broken, "x/metrics.json")


def test_outputs_from_metrics_json_files_on_disk(tmp_path):
    config = StudyConfig.from_sources(None, {"data": "chips", "out": str(tmp_path / "study")})
    for (arch, loss), document in _grid().items():
        folder = tmp_path / "study" / "runs" / run_name(arch, loss)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(document))

    runs = load_runs(config, config.phase1() + config.phase2("dice"))
    tables = build_tables(runs, config.archs, config.losses, config.attention)
    paths = write_outputs(config, tables, runs)

    study = tmp_path / "study"
    assert paths["tables"] == str(study / "tables.md")
    markdown = (study / "tables.md").read_text()
    for title in ("Table 1.", "Table 2.", "Table 3.", "Figure 4.", "chosen by validation mIoU"):
        assert title in markdown
    assert "![Training and validation loss per model](loss_curves.png)" in markdown
    for number, table in enumerate((tables.table1, tables.table2, tables.table3), start=1):
        assert (study / f"table{number}.csv").read_text() == table.to_csv()
    assert (study / "loss_curves.png").read_bytes().startswith(b"\x89PNG")


def test_band_table_compares_the_best_model_on_each_band_set(tmp_path):
    config = StudyConfig.from_sources(
        None,
        {
            "data": "chips",
            "out": str(tmp_path / "study"),
            "resolution_m": 1.0,
            "band_sets": "rgbd,rgbd+terrain",
        },
    )
    documents = _grid()
    documents["unetpp_ca", "dice"]["best_val"]["miou"] = 0.95  # above resunet's 0.9
    runs = _runs(documents)
    tables = build_tables(runs, config.archs, config.losses, config.attention)
    assert best_model(runs, tables) == ("unetpp_ca", "dice")

    phase3 = config.phase3("unetpp_ca", "dice")
    # The grid's own bands reuse its run; the terrain set is a run of its own.
    assert phase3 == [[("unetpp_ca", "dice")], [("unetpp_ca", "dice", "rgbd+terrain")]]
    (terrain_key,) = phase3[1]
    terrain = config.run_config(*terrain_key)
    assert terrain.out.endswith("runs/unetpp_ca-dice-rgbd+terrain")
    assert terrain.bands[4:] == tuple(TERRAIN_BANDS)
    runs[terrain_key] = RunMetrics.from_document(
        "unetpp_ca", "dice", _document(0.97, _test_metrics(0.71)), "terrain"
    )
    per_set = [[runs[key] for key in keys] for keys in phase3]
    tables = add_band_table(tables, per_set, config.band_sets)
    rows = _rows(tables.table4.to_csv())
    assert [(r["bands"], r["model"], r["loss"]) for r in rows] == [
        ("rgbd", "unetpp_ca", "dice"),
        ("rgbd+terrain", "unetpp_ca", "dice"),
    ]
    assert float(rows[1]["miou"]) == 0.71
    assert float(rows[0]["miou"]) == runs["unetpp_ca", "dice"].test["miou"]
    markdown = tables.to_markdown(config.to_dict())
    assert (
        "## Table 4. Input bands" in markdown
        and "| rgbd+terrain | U-Net++ + CA | Dice |" in markdown
    )

    for key, document in {**documents, terrain_key: _document(0.97, _test_metrics(0.71))}.items():
        folder = tmp_path / "study" / "runs" / run_name(*key)
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(document))
    assert load_runs(config, [terrain_key])[terrain_key].test["miou"] == 0.71
    write_outputs(config, tables, runs)
    assert (tmp_path / "study" / "table4.csv").read_text() == tables.table4.to_csv()


def test_band_sets_from_layers_files_over_seeds_report_means_and_spread(tmp_path):
    layers = tmp_path / "ms_ndvi.yaml"
    records = [
        {"name": "ms", "kind": "imagery", "bands": ["red", "green", "blue", "nir"]},
        {"name": "dem", "kind": "elevation"},
        {"name": "ndvi", "kind": "ndvi", "of": "ms"},
    ]
    layers.write_text(yaml.safe_dump({"layers": records}))
    config = StudyConfig.from_sources(
        None,
        {
            "data": "chips",
            "out": str(tmp_path / "study"),
            "band_sets": f"rgbd,{layers}",
            "seeds": "0,1,2",
        },
    )
    phase3 = config.phase3("unetpp_ca", "dice")
    # The grid's run is rgbd with seed 0; the other seeds and the layers file are runs of their own.
    assert phase3[0] == [
        ("unetpp_ca", "dice"),
        ("unetpp_ca", "dice", "rgbd", "1"),
        ("unetpp_ca", "dice", "rgbd", "2"),
    ]
    assert [key[3] for key in phase3[1]] == ["0", "1", "2"]
    seeded = config.run_config(*phase3[1][2])
    assert seeded.seed == 2 and seeded.out.endswith("runs/unetpp_ca-dice-ms_ndvi-seed2")
    assert seeded.bands == ("red", "green", "blue", "nir", "elevation", "ndvi")
    assert config.run_config(*phase3[0][1]).layers == ()

    documents = _grid()
    runs = _runs(documents)
    tables = build_tables(runs, config.archs, config.losses, config.attention)
    per_set = [
        [
            RunMetrics.from_document("unetpp_ca", "dice", _document(0.9, _test_metrics(m)), "x")
            for m in mious
        ]
        for mious in ((0.70, 0.72, 0.74), (0.78, 0.79, 0.80))
    ]
    tables = add_band_table(tables, per_set, ["rgbd", "ms_ndvi"])
    rows = _rows(tables.table4.to_csv())
    assert [r["bands"] for r in rows] == ["rgbd", "ms_ndvi"]
    assert float(rows[0]["miou"]) == pytest.approx(0.72)
    assert float(rows[0]["miou_spread"]) == pytest.approx(0.04)
    assert float(rows[1]["miou_spread"]) == pytest.approx(0.02)
    assert "3 seeds" in tables.to_markdown(config.to_dict())
    with pytest.raises(InputError, match="seeds must be integers"):
        StudyConfig.from_sources(None, {"data": "c", "out": "o", "band_sets": "rgbd", "seeds": "a"})
