"""Dataset readers (EarthReason, RRSIS-D, RefSegRS, user folders) and the synthetic generator."""

from .earthreason import read_earthreason
from .folder import read_folder
from .pairs import expand_question_pairs
from .refsegrs import read_refsegrs
from .registry import DATASET_NAMES, load_dataset
from .rrsisd import read_rrsisd
from .types import Sample

__all__ = [
    "DATASET_NAMES",
    "Sample",
    "expand_question_pairs",
    "load_dataset",
    "read_earthreason",
    "read_folder",
    "read_refsegrs",
    "read_rrsisd",
]
