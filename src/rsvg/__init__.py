"""rsvg: visual grounding on remote sensing images (Zhan et al., IEEE TGRS 2023, and beyond)."""

from rsvg.engine.determinism import request_mkl_cnr

# MKL fixes its reproducibility mode at its first call: ask for strict CNR before anything imports torch (exact
# resume, see rsvg.engine.determinism; a user's own MKL_CBWR wins)
request_mkl_cnr()

__version__ = "0.1.0"

__all__ = ["__version__"]
