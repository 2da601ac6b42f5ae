"""The documentation's Sphinx configuration and its helpers (not part of the package)."""
