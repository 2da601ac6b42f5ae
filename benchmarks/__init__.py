"""Benchmarks for jaxpool (run as modules, e.g. ``python -m benchmarks.pooling``)."""
