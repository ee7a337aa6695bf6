"""shopstream: streaming-first (Kappa) e-commerce analytics."""

__version__ = "0.1.0"
