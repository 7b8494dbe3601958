"""``lsmap serve``: a local viewer for a finished map output (tile server + web map)."""

from pipelines.serve.app import create_app
from pipelines.serve.outputs import MapOutputs, load_outputs
from pipelines.serve.server import serve

__all__ = ["MapOutputs", "create_app", "load_outputs", "serve"]
