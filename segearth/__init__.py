"""SegEarth-R1: geospatial pixel reasoning.

    from segearth import Predictor, write_result
    predictor = Predictor.from_pretrained("earth-insights/SegEarth-R1-EarthReason")
    predictor.set_image("scene.png")
    result = predictor.predict("If an earthquake struck, where could residents gather safely?")
    result.mask, result.regions, result.answer
    write_result(result, "out", "scene")
"""
from .config import SegEarthConfig
from .errors import CheckpointError, GeoError, InputError, SegEarthError
from .model import SegEarthR1
from .model.generation import INDUCTOR_OPTIONS, AnswerStream, CompiledDecoder, DecodeStep
from .outputs import write_result
from .predictor import Predictor
from .result import Result

__all__ = ["INDUCTOR_OPTIONS", "AnswerStream", "CheckpointError", "CompiledDecoder", "DecodeStep", "GeoError", "InputError", "Predictor", "Result",
           "SegEarthConfig", "SegEarthError", "SegEarthR1", "write_result"]
