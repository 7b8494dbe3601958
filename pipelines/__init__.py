"""I/O and orchestration for lsmap: storage, rasters, chips, training, mapping, scans and the CLI."""
