"""Model bundles in storage: a training run directory or the bundle file itself, local or S3."""

from __future__ import annotations

from lsmodel.bundle import BundleError, ModelBundle
from pipelines import storage
from pipelines.errors import InputError, StorageError

BUNDLE_NAME = "model.lsmap"


def resolve_bundle_uri(uri: str) -> str:
    """The bundle file a ``--model`` URI means: ``uri`` itself, or the bundle inside a run directory."""
    inside = storage.join(uri, BUNDLE_NAME)
    return inside if storage.exists(inside) else uri


def load_bundle(uri: str) -> ModelBundle:
    """Read and validate a bundle; never executes code from the file."""
    path = resolve_bundle_uri(uri)
    try:
        data = storage.read_bytes(path)
    except (FileNotFoundError, StorageError) as err:
        raise InputError(f"model bundle {uri}: cannot read it ({err})") from err
    try:
        return ModelBundle.from_bytes(data)
    except BundleError as err:
        raise InputError(f"model bundle {path}: {err}") from err


def save_bundle(bundle: ModelBundle, uri: str) -> str:
    """Write a bundle to ``uri`` (a file, or a directory that gets ``model.lsmap``); returns its URI."""
    path = uri if uri.endswith(".lsmap") else storage.join(uri, BUNDLE_NAME)
    storage.write_bytes(path, bundle.to_bytes())
    return path
