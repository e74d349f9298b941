"""SegEarth-R1's components, one file each, in data-path order."""
from .segearth_r1 import ImageFeatures, MaskOutput, PromptInputs, SegEarthOutput, SegEarthR1

__all__ = ["ImageFeatures", "MaskOutput", "PromptInputs", "SegEarthOutput", "SegEarthR1"]
