"""The settings of one training run: a typed dataclass, a YAML file and command-line overrides.

``TrainConfig`` is the single list of keys. A YAML file holds any of them (``batch_size`` or
``batch-size``); flags given on the command line override the file; what neither gives takes the
paper's protocol (Adam, learning rate 1e-5, batch 2, 50 epochs, dropout 0.5, 128 px chips).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import InputError

if TYPE_CHECKING:
    from pipelines.layers import LayerStack
    from pipelines.regional.split import SplitSpec

# What a rerun into an existing --out may change; anything else would mix two different runs.
RESUMABLE_KEYS = frozenset({"epochs", "workers", "gpu"})
_DEFAULT_BANDS = ("red", "green", "blue", "elevation")
# The settings of training on a region (not on chips).
REGION_KEYS = ("region", "block_m", "buffer_m", "folds", "fold", "partition")
REGION_KEYS += ("negatives", "windows_per_epoch")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run on ``data``, a Bijie-layout chip directory, or on ``region``, a region file
    (layers and a landslide inventory, see :mod:`pipelines.regional.region_file`); ``out`` is a
    local or s3:// URI.

    ``split_fractions`` (train, val, test) and ``seed`` fix the split, the initial weights and the
    shuffling; ``resolution_m`` is the chips' ground resolution when known (kept in the bundle).
    ``bands`` are the model's input bands by name (see :mod:`pipelines.bands`; named sets such as
    ``terrain`` are expanded); terrain bands need ``resolution_m``, and ``relative_radius_m`` sets
    the window of ``relative_elevation``. ``layers`` declares the inputs as layers instead
    (records as in a layers file, see :mod:`pipelines.layers`; chips read each layer's folder);
    then ``bands`` are the layers' bands, and categorical layers without ``categories`` take the
    codes found in the training chips.

    A region is split into spatial blocks of ``block_m`` metres (``split_fractions`` deals them;
    ``folds``/``fold`` make it a k-fold instead, ``split_fractions[1]`` validating, its blocks
    dealt into folds as ``partition`` says: see :mod:`pipelines.regional.split`) and training
    windows keep ``buffer_m`` from held-out blocks; ``negatives`` is the number of background
    windows per landslide window, ``windows_per_epoch`` the windows of an epoch (default: one
    per inventory feature, with its background windows); ``layers`` and ``resolution_m`` come from the region file and
    its first layer when not given.
    """

    out: str
    data: str | None = None
    region: str | None = None
    arch: str = "unet"
    loss: str = "bce"
    epochs: int = 50
    workers: int = 1
    batch_size: int = 2
    lr: float = 1e-5
    seed: int = 0
    gpu: bool = False
    size: int = 128
    base_width: int = 32
    depth: int = 4
    dropout: float = 0.5
    resolution_m: float | None = None
    threshold: float = 0.5
    split_fractions: tuple[float, float, float] = (0.64, 0.16, 0.20)
    # pipelines.bands.BASE_BANDS and pipelines.terrain.DEFAULT_RELATIVE_RADIUS_M, written out:
    # importing them here would slow down `lsmap --help`.
    bands: tuple[str, ...] = _DEFAULT_BANDS
    relative_radius_m: float = 50.0
    layers: tuple[dict[str, Any], ...] = ()
    block_m: float = 512.0
    buffer_m: float = 64.0
    folds: int | None = None
    fold: int | None = None
    partition: str = "blocks"
    negatives: float = 1.0
    windows_per_epoch: int | None = None

    def __post_init__(self) -> None:
        from lsmodel.losses import build_loss
        from lsmodel.models import ARCHITECTURES
        from pipelines.bands import parse_bands
        from pipelines.layers import ElevationLayer, LayerStack

        problems = []
        if (self.data is None) == (self.region is None):
            problems.append("give data (a chip directory) or region (a region file), not both")
        try:
            if self.layers:
                stack = LayerStack.from_record(list(self.layers))
                # The bands a config made from layers records are the layers' own.
                if tuple(self.bands) not in (_DEFAULT_BANDS, stack.names):
                    raise InputError("give bands or layers, not both")
                object.__setattr__(self, "layers", tuple(stack.record()))
                object.__setattr__(self, "bands", stack.names)
            else:
                object.__setattr__(self, "bands", parse_bands(self.bands))
                stack = self.layer_stack()
        except InputError as err:
            problems.append(str(err))
        else:
            terrain = [
                band
                for layer in stack.layers
                if isinstance(layer, ElevationLayer)
                for band in layer.terrain
            ]
            if terrain and self.resolution_m is None and self.region is None:
                problems.append(
                    f"terrain bands {', '.join(terrain)} need resolution_m, the chips' "
                    "ground resolution in metres (1 for `lsmap synth chips`)"
                )
        if not (math.isfinite(self.relative_radius_m) and self.relative_radius_m > 0):
            problems.append(f"relative_radius_m must be > 0, got {self.relative_radius_m}")
        if self.arch not in ARCHITECTURES:
            problems.append(f"arch {self.arch!r} is not one of {', '.join(ARCHITECTURES)}")
        try:
            build_loss(self.loss)
        except ValueError as err:
            problems.append(f"loss {self.loss!r}: {err}")
        for name in ("epochs", "workers", "batch_size", "base_width", "depth"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.depth >= 1 and (self.size < 1 or self.size % 2**self.depth):
            problems.append(
                f"size {self.size} must be a positive multiple of 2**depth = {2**self.depth}"
            )
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.threshold <= 1.0:
            problems.append(f"threshold must be in [0, 1], got {self.threshold}")
        if self.resolution_m is not None and not self.resolution_m > 0:
            problems.append(f"resolution_m must be > 0, got {self.resolution_m}")
        fractions = self.split_fractions
        if (
            len(fractions) != 3
            or min(fractions) < 0
            or abs(sum(fractions) - 1) > 1e-6
            or not fractions[0] > 0
            or not fractions[1] > 0
        ):
            problems.append(
                f"split_fractions must be (train, val, test) >= 0 summing to 1 with train and "
                f"val > 0, got {list(fractions)}"
            )
        if self.region is not None:
            try:
                self.split_spec()
            except InputError as err:
                problems.append(str(err))
            if not (math.isfinite(self.negatives) and self.negatives >= 0):
                problems.append(f"negatives must be >= 0, got {self.negatives}")
            if self.windows_per_epoch is not None and self.windows_per_epoch < 1:
                problems.append(f"windows_per_epoch must be >= 1, got {self.windows_per_epoch}")
        if problems:
            raise InputError("invalid training settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON values (``split_fractions`` and ``bands`` as lists)."""
        values = asdict(self)
        values["split_fractions"] = list(self.split_fractions)
        values["bands"] = list(self.bands)
        values["layers"] = [dict(layer) for layer in self.layers]
        return values

    def split_spec(self) -> SplitSpec:
        """How a region is split into blocks (its seed is the run's)."""
        from pipelines.regional.split import SplitSpec

        _, val, test = self.split_fractions
        return SplitSpec(
            block_m=self.block_m,
            buffer_m=self.buffer_m,
            val_fraction=val,
            test_fraction=test,
            seed=self.seed,
            folds=self.folds,
            fold=self.fold,
            partition=self.partition,
        )

    def layer_stack(self) -> LayerStack:
        """The model's input layers, as declared (categorical layers may still lack their
        categories: see :meth:`pipelines.training.data.TrainingStats.measure`)."""
        from pipelines.layers import LayerStack, stack_from_bands

        if self.layers:
            return LayerStack.from_record(list(self.layers))
        return stack_from_bands(self.bands, {"relative_radius_m": self.relative_radius_m})

    @classmethod
    def from_sources(
        cls,
        file: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> TrainConfig:
        """Settings from a YAML ``file`` (optional), then ``overrides`` (e.g. explicit flags).

        Keys of ``overrides`` whose value is None are treated as not given.
        """
        values = load_config_file(file) if file is not None else {}
        source = str(file) if file is not None else "command line"
        given = {key: value for key, value in (overrides or {}).items() if value is not None}
        values.update(coerce_settings(given, "command line"))
        if "out" not in values:
            raise InputError(
                f"{source}: missing out (give --out or put 'out' in the --config file)"
            )
        if "data" not in values and "region" not in values:
            raise InputError(
                f"{source}: missing data or region (give --data CHIPS or --region REGION.yaml, "
                "or put one in the --config file)"
            )
        return cls(**values)


def config_keys() -> list[str]:
    """Every key a config file may hold, in declaration order."""
    return [f.name for f in fields(TrainConfig)]


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The typed settings in a YAML mapping; unknown keys and wrong types are InputErrors."""
    import yaml

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"config file {path}: cannot read it ({err})") from err
    except yaml.YAMLError as err:
        raise InputError(f"config file {path}: not valid YAML ({err})") from err
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InputError(f"config file {path}: expected a mapping of keys to values")
    values = {str(key).replace("-", "_"): value for key, value in document.items()}
    unknown = sorted(set(values) - set(config_keys()))
    if unknown:
        raise InputError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; "
            f"valid keys: {', '.join(config_keys())}"
        )
    return coerce_settings(values, f"config file {path}")


def coerce_settings(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise InputError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    return {key: _coerce(key, hints[key], value, source) for key, value in values.items()}


def _coerce(key: str, hint: Any, value: Any, source: str) -> Any:
    """``value`` as type ``hint``, accepting what YAML makes of it (``1e-5`` is a string there)."""
    if isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint):
        if value is None:
            return None
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    try:
        if key == "layers":  # a list of layer records, checked by LayerStack
            if isinstance(value, (list, tuple)) and all(isinstance(v, Mapping) for v in value):
                return tuple(dict(v) for v in value)
            raise InputError(f"{source}: layers must be a list of layers, got {value!r}")
        if hint is bool:
            if isinstance(value, bool):
                return value
        elif hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif hint is float:
            if not isinstance(value, bool) and isinstance(value, (int, float, str)):
                return float(value)
        elif hint is str:
            if isinstance(value, (str, Path)):
                return str(value)
        elif typing.get_args(hint)[1:] == (Ellipsis,):  # tuple[str, ...]: a list or "a,b,c"
            if isinstance(value, str):
                value = value.split(",")
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return tuple(v.strip() for v in value if v.strip())
        elif typing.get_origin(hint) is tuple and isinstance(value, (list, tuple)):
            items = typing.get_args(hint)
            if len(value) == len(items):
                return tuple(
                    _coerce(key, item, v, source) for item, v in zip(items, value, strict=True)
                )
    except ValueError:
        pass
    expected = getattr(hint, "__name__", str(hint))
    raise InputError(f"{source}: {key} must be {expected}, got {value!r}")
