"""Image quality metrics on the SR papers' protocol, behind one registry.

``from litesr.metrics import psnr, ssim, calculate_metrics, rgb_to_y`` keeps the paper-protocol numpy API
(:mod:`litesr.metrics.psnr_ssim`). ``create_metric(name, color=..., crop=...)`` builds any registered metric; see
docs/metrics.md for the list, their references and calibration.
"""

from __future__ import annotations

from . import fsim, gmsd, learned, msssim, niqe, noref, vif  # noqa: F401  (registration)
from .base import METRICS, Metric, create_metric, list_metrics, metric_class, register_metric
from .psnr_ssim import Metrics, calculate_metrics, peak_value, psnr, rgb_to_y, ssim

__all__ = ["METRICS", "Metric", "Metrics", "calculate_metrics", "create_metric", "list_metrics", "metric_class",
           "peak_value", "psnr", "register_metric", "rgb_to_y", "ssim"]
