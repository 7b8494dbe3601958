"""Model bundles: weights plus everything needed to apply them, as bytes that never run code.

A bundle is a zip with two members: ``bundle.json`` (architecture, bands, normalisation, tile,
resolution, threshold, metrics, format and lsmap versions) and ``weights.pt`` (a state dict read
with ``torch.load(weights_only=True)``, which refuses pickled objects other than tensors).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import io
import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from lsmodel.models import REGISTRY, build_model

FORMAT_VERSION = 1
_CONFIG, _WEIGHTS = "bundle.json", "weights.pt"
# Fixed member timestamps make equal bundles equal bytes (and equal sha256).
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


class BundleError(ValueError):
    """Bytes that are not a usable model bundle; the message says what is wrong."""


def _lsmap_version() -> str:
    try:
        return importlib.metadata.version("lsmap")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _arch_setting(arch_kwargs: dict[str, Any], name: str) -> Any:
    """``arch_kwargs[name]``, or ``build_model``'s default for it."""
    return arch_kwargs.get(name, inspect.signature(build_model).parameters[name].default)


@dataclass(kw_only=True)
class ModelBundle:
    """A trained model and the facts needed to apply it to new imagery.

    ``bands`` name the input channels in order; ``norm_mean``/``norm_std`` (one per band, raw band
    units) normalise them as ``(x - mean) / std``. ``tile_size`` is the training chip size in
    pixels and ``resolution_m`` its ground resolution (None if unknown). A probability >=
    ``threshold`` counts as landslide. ``metrics`` holds validation results (JSON values).
    ``terrain`` holds the numeric parameters of bands derived from the DEM (e.g. a window radius
    in metres), so that whoever applies the model derives them as training did; empty when no
    band needs any. Bundles written before it existed read as empty. ``layers`` holds the input
    layers that give those bands (name, kind and parameters, as JSON objects: see
    ``pipelines.layers``); empty in bundles whose bands are a plain band list.
    """

    arch: str
    arch_kwargs: dict[str, Any]
    bands: list[str]
    norm_mean: list[float]
    norm_std: list[float]
    tile_size: int
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    resolution_m: float | None = None
    threshold: float = 0.5
    metrics: dict[str, Any] = field(default_factory=dict)
    terrain: dict[str, float] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        problems = []
        if self.format_version != FORMAT_VERSION:
            problems.append(
                f"format_version {self.format_version} is not supported (this lsmap reads "
                f"{FORMAT_VERSION})"
            )
        if self.arch not in REGISTRY:
            problems.append(f"unknown architecture {self.arch!r}")
        settings = set(inspect.signature(build_model).parameters) - {"arch"}
        if not set(self.arch_kwargs) <= settings or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in self.arch_kwargs.values()
        ):
            raise BundleError(
                f"invalid model bundle: arch_kwargs {self.arch_kwargs} must map some of "
                f"{sorted(settings)} to numbers"
            )
        in_channels = _arch_setting(self.arch_kwargs, "in_channels")
        if len(self.bands) != in_channels:
            problems.append(
                f"{len(self.bands)} bands {self.bands} but the model takes {in_channels}"
            )
        if not len(self.norm_mean) == len(self.norm_std) == len(self.bands):
            problems.append(
                f"{len(self.bands)} bands but {len(self.norm_mean)} means and "
                f"{len(self.norm_std)} standard deviations"
            )
        if not all(math.isfinite(m) for m in self.norm_mean):
            problems.append(f"norm_mean must be finite, got {self.norm_mean}")
        if not all(math.isfinite(s) and s > 0 for s in self.norm_std):
            problems.append(f"norm_std must be finite and > 0, got {self.norm_std}")
        depth = _arch_setting(self.arch_kwargs, "depth")
        if self.tile_size < 1 or self.tile_size % 2**depth:
            problems.append(f"tile_size {self.tile_size} is not a positive multiple of {2**depth}")
        if not 0.0 <= self.threshold <= 1.0:
            problems.append(f"threshold {self.threshold} is not in [0, 1]")
        if not isinstance(self.terrain, dict) or not all(
            isinstance(k, str)
            and isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            for k, v in self.terrain.items()
        ):
            problems.append(f"terrain {self.terrain!r} must map names to finite numbers")
        if len(set(self.bands)) != len(self.bands):
            problems.append(f"bands {self.bands} name a band more than once")
        if not isinstance(self.layers, list) or not all(
            isinstance(layer, dict) and isinstance(layer.get("name"), str) for layer in self.layers
        ):
            problems.append(f"layers {self.layers!r} must be a list of objects with a name")
        if problems:
            raise BundleError("invalid model bundle: " + "; ".join(problems))

    @classmethod
    def from_model(cls, model: nn.Module, **kwargs: Any) -> ModelBundle:
        """Bundle a model made by ``build_model`` (its ``arch``/``arch_kwargs`` and CPU weights).

        ``kwargs`` are the other fields (bands, norm_mean, norm_std, tile_size, ...).
        """
        if not hasattr(model, "arch") or not hasattr(model, "arch_kwargs"):
            raise ValueError("model has no arch/arch_kwargs: build it with lsmodel.build_model")
        state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
        return cls(arch=model.arch, arch_kwargs=dict(model.arch_kwargs), state_dict=state, **kwargs)

    def build(self) -> nn.Module:
        """The model with the bundle's weights, in eval mode, on the CPU."""
        try:
            model = build_model(self.arch, **self.arch_kwargs)
        except (TypeError, ValueError) as err:
            raise BundleError(f"cannot build {self.arch!r} from {self.arch_kwargs}: {err}") from err
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as err:
            raise BundleError(f"weights do not match architecture {self.arch!r}: {err}") from err
        return model.eval()

    def config(self) -> dict[str, Any]:
        """Everything but the weights, as written to ``bundle.json``."""
        config = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "state_dict"}
        return {**config, "lsmap_version": _lsmap_version()}

    def to_bytes(self) -> bytes:
        """Serialise to a zip (``bundle.json`` + ``weights.pt``); equal bundles give equal bytes."""
        weights = io.BytesIO()
        torch.save({k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()}, weights)
        config = json.dumps(self.config(), indent=2, sort_keys=True, allow_nan=False).encode()
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in ((_CONFIG, config), (_WEIGHTS, weights.getvalue())):
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
        return out.getvalue()

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of ``to_bytes()``: identifies the bundle in provenance records."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelBundle:
        """Parse and validate bundle bytes; raise BundleError if they are not a usable bundle.

        Checks the zip, its members, the format version, field types, band count against the
        model's input channels, and that the weights load into the architecture.
        """
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                missing = {_CONFIG, _WEIGHTS} - set(archive.namelist())
                if missing:
                    raise BundleError(f"not a model bundle: missing {sorted(missing)}")
                config_bytes, weights_bytes = archive.read(_CONFIG), archive.read(_WEIGHTS)
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            zlib.error,
            NotImplementedError,
            OSError,
            EOFError,
        ) as err:
            raise BundleError(f"not a model bundle (corrupt or not a zip): {err}") from err
        try:
            config = json.loads(config_bytes)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BundleError(f"{_CONFIG} is not valid JSON: {err}") from err
        state_dict = _load_weights(weights_bytes)
        bundle = cls(**_parse_config(config), state_dict=state_dict)
        bundle.build()  # weights must fit the architecture
        return bundle


def _load_weights(data: bytes) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises several types; all mean "refuse"
        raise BundleError(f"{_WEIGHTS} is not a plain tensor state dict: {err}") from err
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise BundleError(f"{_WEIGHTS} must hold a dict of name -> tensor")
    return state


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "format_version": (int,),
    "arch": (str,),
    "arch_kwargs": (dict,),
    "bands": (list,),
    "norm_mean": (list,),
    "norm_std": (list,),
    "tile_size": (int,),
    "resolution_m": (int, float, type(None)),
    "threshold": (int, float),
    "metrics": (dict,),
}
# Fields added after format 1 was first written: absent from older bundles, given their default.
_OPTIONAL_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "terrain": ((dict,), {}),
    "layers": ((list,), []),
}


def _parse_config(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise BundleError(f"{_CONFIG} must hold a JSON object")
    # Check the version first: a newer format may lack or rename other fields.
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"bundle format_version {version!r} is not supported (this lsmap reads "
            f"{FORMAT_VERSION}; bundle written by lsmap {config.get('lsmap_version', '?')})"
        )
    missing = [name for name in _FIELD_TYPES if name not in config]
    if missing:
        raise BundleError(f"{_CONFIG} lacks field(s) {missing}")
    for name, types in _FIELD_TYPES.items():
        value = config[name]
        if not isinstance(value, types) or isinstance(value, bool):
            raise BundleError(f"{_CONFIG} field {name!r} has the wrong type: {value!r}")
    if not all(isinstance(b, str) for b in config["bands"]):
        raise BundleError(f"{_CONFIG} bands must be strings, got {config['bands']!r}")
    for name in ("norm_mean", "norm_std"):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in config[name]):
            raise BundleError(f"{_CONFIG} {name} must be numbers, got {config[name]!r}")
    parsed = {name: config[name] for name in _FIELD_TYPES}
    for name, (types, default) in _OPTIONAL_FIELDS.items():
        value = config.get(name, default)
        if not isinstance(value, types):
            raise BundleError(f"{_CONFIG} field {name!r} has the wrong type: {value!r}")
        parsed[name] = value
    for name in ("norm_mean", "norm_std"):
        parsed[name] = [float(v) for v in parsed[name]]
    parsed["threshold"] = float(parsed["threshold"])
    if parsed["resolution_m"] is not None:
        parsed["resolution_m"] = float(parsed["resolution_m"])
    return parsed
