"""Dataset readers (EarthReason, RRSIS-D, RefSegRS, user folders) and the synthetic generator."""
from .types import Sample

__all__ = ["Sample"]
