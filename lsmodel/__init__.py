"""Landslide segmentation models, losses, streaming metrics, Grad-CAM and model bundles (torch only)."""
