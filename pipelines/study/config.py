"""The settings of a study: one base training configuration and the grid of models and losses.

A study config file is a training config file (any ``TrainConfig`` key, see ``lsmap train``)
plus the grid keys, each a list of names:

```yaml
data: chips/
out: s3://bucket/study
epochs: 50
archs: [unet, resunet, unetpp]                   # base models (Table 1 rows)
losses: [bce, focal, dice, wce]                  # Table 1 columns
attention: [unetpp_sa, unetpp_ca, unetpp_sa_ca]  # Table 3, trained with U-Net++'s best loss
band_sets: [rgbd, rgbd+terrain, ms_ndvi.yaml]    # Table 4 (optional): the best model per band set
seeds: [0, 1, 2]                                 # Table 4 (optional): each band set per seed
resolution_m: 1                                  # terrain bands need the chips' resolution
```

``band_sets`` are ``+``-joined band names or named sets (see :mod:`pipelines.bands`), or layers
files (``.yaml``, see :mod:`pipelines.inputs`; named by their stem in the table): phase 3 trains
the best model of Tables 2 and 3 (by validation mIoU, with its loss) on each band set, once per
``seeds`` entry when given (Table 4 then shows means over the seeds and the spread of mIoU); a
set equal to the grid's own ``bands`` with the grid's seed reuses that run. ``arch`` and ``loss`` are the grid's to set, so a study config may not hold them. What neither the
file nor the flags give takes ``TrainConfig``'s defaults (the paper's protocol) and the paper's grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipelines.errors import InputError
from pipelines.training.config import REGION_KEYS, TrainConfig, coerce_settings, config_keys

BASE_MODELS = ("unet", "resunet", "unetpp")
ATTENTION_MODELS = ("unetpp_sa", "unetpp_ca", "unetpp_sa_ca")
LOSSES = ("bce", "focal", "dice", "wce")
# The paper adds attention to U-Net++ and compares it with plain U-Net++ at its best loss.
ATTENTION_BASE = "unetpp"
GRID_KEYS = ("archs", "losses", "attention", "band_sets", "seeds")
LAYERS_SUFFIXES = (".yaml", ".yml")
SET_BY_GRID = ("arch", "loss")
RUNS_DIR = "runs"


def run_name(arch: str, loss: str, band_set: str | None = None, seed: str | None = None) -> str:
    """The folder of one run under ``<out>/runs/`` (a band set of phase 3 appended, and its
    seed when the study has seeds)."""
    name = f"{arch}-{loss}" if band_set is None else f"{arch}-{loss}-{band_set_label(band_set)}"
    return name if seed is None else f"{name}-seed{seed}"


def is_layers_file(band_set: str) -> bool:
    return band_set.lower().endswith(LAYERS_SUFFIXES)


def band_set_label(band_set: str) -> str:
    """How a band set is named in tables and run folders: a layers file by its stem."""
    return Path(band_set).stem if is_layers_file(band_set) else band_set


def band_set_names(label: str) -> tuple[str, ...]:
    """The bands of a study band set such as ``rgbd+terrain``; InputError if it is not valid."""
    from pipelines.bands import parse_bands

    return parse_bands(label.split("+"))


def band_set_settings(band_set: str) -> dict[str, Any]:
    """The training settings of a band set: ``bands``, or a layers file's ``layers``."""
    if not is_layers_file(band_set):
        return {"bands": band_set_names(band_set), "layers": ()}
    from pipelines.inputs import read_layers_file

    return {"bands": TrainConfig.bands, "layers": read_layers_file(band_set).definitions}


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """A study: ``base`` holds every training setting but ``arch`` and ``loss``, which the grid sets.

    ``base.out`` is the study's output URI; each run writes under ``<out>/runs/<arch>-<loss>/``.
    Phase 1 trains every ``archs`` x ``losses`` pair; phase 2 trains each ``attention`` model with
    the loss that gave U-Net++ its best validation mIoU; phase 3 trains the best model of phases
    1 and 2 on each of ``band_sets`` (none by default).
    """

    base: TrainConfig
    archs: tuple[str, ...] = BASE_MODELS
    losses: tuple[str, ...] = LOSSES
    attention: tuple[str, ...] = ATTENTION_MODELS
    band_sets: tuple[str, ...] = ()
    seeds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        for key, allowed in (("archs", BASE_MODELS), ("attention", ATTENTION_MODELS)):
            names = getattr(self, key)
            unknown = [name for name in names if name not in allowed]
            if unknown:
                problems.append(f"{key} may hold {', '.join(allowed)}, not {', '.join(unknown)}")
        for key in GRID_KEYS:
            names = getattr(self, key)
            if not names and key not in ("band_sets", "seeds"):
                problems.append(f"{key} is empty")
            if len(set(names)) != len(names):
                problems.append(f"{key} repeats a name: {', '.join(names)}")
        if ATTENTION_BASE not in self.archs:
            problems.append(
                f"archs must include {ATTENTION_BASE}: the attention models are compared with it "
                "and trained with its best loss"
            )
        if not self.base.split_fractions[2] > 0:
            problems.append(
                "split_fractions leaves no test chips, and the tables report test metrics"
            )
        if not all(seed.isdigit() for seed in self.seeds):
            problems.append(f"seeds must be integers >= 0, got {', '.join(self.seeds)}")
        if self.seeds and not self.band_sets:
            problems.append("seeds repeat the band-set runs of Table 4: give band_sets too")
        labels = [band_set_label(b) for b in self.band_sets]
        if len(set(labels)) != len(labels):
            problems.append(f"band_sets name two sets alike: {', '.join(labels)}")
        if problems:
            raise InputError("invalid study settings: " + "; ".join(problems))
        for loss in self.losses:  # TrainConfig names a bad loss (or a wce/size problem) clearly
            self.run_config(self.archs[0], loss)
        for label in self.band_sets:  # bad band names, or terrain bands without resolution_m
            self.run_config(self.archs[0], self.losses[0], label)

    @property
    def out(self) -> str:
        return self.base.out

    def run_config(
        self, arch: str, loss: str, band_set: str | None = None, seed: str | None = None
    ) -> TrainConfig:
        """The training settings of one run of the grid (of phase 3 with ``band_set`` and,
        in studies with seeds, ``seed``)."""
        from pipelines import storage  # here, not at the top: `lsmap --help` needs no fsspec

        out = storage.join(self.base.out, RUNS_DIR, run_name(arch, loss, band_set, seed))
        seeded = {} if seed is None else {"seed": int(seed)}
        if band_set is None:
            return replace(self.base, arch=arch, loss=loss, out=out, **seeded)
        try:
            settings = band_set_settings(band_set)
            return replace(self.base, arch=arch, loss=loss, out=out, **settings, **seeded)
        except InputError as err:
            raise InputError(f"invalid study settings: band set {band_set!r}: {err}") from err

    def phase3(self, arch: str, loss: str) -> list[list[tuple[str, ...]]]:
        """The runs of Table 4: per band set, one per seed (the grid's seed without seeds).
        A band set equal to the grid's bands with the grid's seed is ``(arch, loss)`` itself
        (that run exists); the others ``(arch, loss, band_set[, seed])``."""
        keys = []
        for band_set in self.band_sets:
            own = not is_layers_file(band_set) and band_set_names(band_set) == self.base.bands
            runs = []
            for seed in self.seeds or (None,):
                if own and seed in (None, str(self.base.seed)):
                    runs.append((arch, loss))
                else:
                    runs.append((arch, loss, band_set, *([seed] if seed is not None else [])))
            keys.append(runs)
        return keys

    def phase1(self) -> list[tuple[str, str]]:
        """The ``(arch, loss)`` pairs of Table 1, row by row."""
        return [(arch, loss) for arch in self.archs for loss in self.losses]

    def phase2(self, attention_loss: str) -> list[tuple[str, str]]:
        """The ``(arch, loss)`` pairs of the attention models, all with ``attention_loss``."""
        return [(arch, attention_loss) for arch in self.attention]

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values (the base settings without ``arch`` and ``loss``)."""
        values = {k: v for k, v in self.base.to_dict().items() if k not in SET_BY_GRID}
        return {**values, **{key: list(getattr(self, key)) for key in GRID_KEYS}}

    @classmethod
    def from_sources(
        cls,
        file: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> StudyConfig:
        """Settings from a YAML ``file`` (optional), then ``overrides`` (e.g. explicit flags).

        ``overrides`` holds training keys and grid keys (lists of names); None means not given.
        Local ``data`` and ``out`` paths become absolute: Ray runs the trainings elsewhere.
        """
        values = _load_file(file) if file is not None else {}
        given = {key: value for key, value in (overrides or {}).items() if value is not None}
        grid_given = {key: given.pop(key) for key in GRID_KEYS if key in given}
        _refuse_grid_keys(given, "command line")
        values.update(_grid_values(grid_given, "command line"))
        grid = {key: values.pop(key) for key in GRID_KEYS if key in values}
        # Layers files are read where the runs start: absolute, as data and out.
        grid["band_sets"] = tuple(
            _absolute(b) if is_layers_file(b) else b for b in grid.get("band_sets", ())
        )
        base = TrainConfig.from_sources(None, {**values, **given})
        if base.region is not None:
            raise InputError(
                "a study compares models on chips (give data); train on a region with "
                "`lsmap train --region`"
            )
        base = replace(base, data=_absolute(base.data), out=_absolute(base.out))
        return cls(base=base, **grid)


def _absolute(uri: str) -> str:
    from pipelines import storage

    if storage.is_remote(uri):
        return uri
    return str(Path(uri[len("file://") :] if uri.lower().startswith("file://") else uri).resolve())


def _load_file(path: str | Path) -> dict[str, Any]:
    """The typed training settings and grid lists in a YAML mapping."""
    import yaml

    source = f"study config {path}"
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"{source}: cannot read it ({err})") from err
    except yaml.YAMLError as err:
        raise InputError(f"{source}: not valid YAML ({err})") from err
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InputError(f"{source}: expected a mapping of keys to values")
    values = {str(key).replace("-", "_"): value for key, value in document.items()}
    _refuse_grid_keys(values, source)
    chips_only = [key for key in config_keys() if key not in (*SET_BY_GRID, *REGION_KEYS)]
    valid = chips_only + list(GRID_KEYS)
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise InputError(
            f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}"
        )
    grid = _grid_values({k: values.pop(k) for k in GRID_KEYS if k in values}, source)
    return {**coerce_settings(values, source), **grid}


def _refuse_grid_keys(values: Iterable[str], source: str) -> None:
    taken = [key for key in SET_BY_GRID if key in values]
    if taken:
        raise InputError(
            f"{source}: {' and '.join(taken)} are set by the study's grid; give archs, losses "
            "and attention instead"
        )


def _grid_values(values: Mapping[str, Any], source: str) -> dict[str, tuple[str, ...]]:
    """Grid lists as tuples of names; a comma-separated string counts as a list."""
    grid = {}
    for key, value in values.items():
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        if key == "seeds" and isinstance(value, (list, tuple)):  # YAML reads them as numbers
            value = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{source}: {key} must be a list of names, got {value!r}")
        grid[key] = tuple(value)
    return grid
