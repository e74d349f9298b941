"""SegEarth-R1: geospatial pixel reasoning."""
from .config import SegEarthConfig

__all__ = ["SegEarthConfig"]
