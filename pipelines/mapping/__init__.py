"""Region-wide mapping: plan units, read + infer + write them with Ray Data, then export."""

from pipelines.mapping.run import map_region

__all__ = ["map_region"]
