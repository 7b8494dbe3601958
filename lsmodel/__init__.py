"""Landslide segmentation models, losses, streaming metrics, Grad-CAM and model bundles (torch only)."""

from lsmodel.bundle import BundleError, ModelBundle
from lsmodel.explain import grad_cam
from lsmodel.losses import build_loss
from lsmodel.metrics import SegmentationMetrics
from lsmodel.models import ARCHITECTURES, build_model

__all__ = [
    "ARCHITECTURES",
    "BundleError",
    "ModelBundle",
    "SegmentationMetrics",
    "build_loss",
    "build_model",
    "grad_cam",
]
