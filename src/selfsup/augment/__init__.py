"""Augmentations applied to whole batches on the device, with per-sample random parameters."""
from selfsup.augment import ops
from selfsup.augment.multicrop import MultiCropViews
from selfsup.augment.views import SimCLRViews

__all__ = ["ops", "MultiCropViews", "SimCLRViews"]
