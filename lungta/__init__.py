"""Lungta: offline ticket gates for scenic areas. This package holds the ``lungta`` command."""

__version__ = "0.1.0"
