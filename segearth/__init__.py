"""SegEarth-R1: geospatial pixel reasoning.

    from segearth import Predictor
    predictor = Predictor.from_pretrained("earth-insights/SegEarth-R1-EarthReason")
    predictor.set_image("scene.png")
    result = predictor.predict("If an earthquake struck, where could residents gather safely?")
"""
from .config import SegEarthConfig
from .errors import CheckpointError, GeoError, InputError, SegEarthError
from .model import SegEarthR1
from .predictor import Prediction, Predictor

__all__ = ["CheckpointError", "GeoError", "InputError", "Prediction", "Predictor", "SegEarthConfig",
           "SegEarthError", "SegEarthR1"]
