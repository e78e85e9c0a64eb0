"""rsvg: visual grounding on remote sensing images (Zhan et al., IEEE TGRS 2023, and beyond)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
