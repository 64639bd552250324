"""readerfirst: a newsletter personalisation pipeline where every section serves the reader."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
