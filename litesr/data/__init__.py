"""Datasets: training patches (``litesr.data.train``) and evaluation sets (``litesr.data.benchmark``)."""

from __future__ import annotations

from .benchmark import BenchmarkDataset, BenchmarkImage, open_dataset

__all__ = ["BenchmarkDataset", "BenchmarkImage", "open_dataset"]
