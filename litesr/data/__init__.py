"""Datasets: training patches (``litesr.data.train``)."""
