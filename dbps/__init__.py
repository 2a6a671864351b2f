"""dbps: dual-buffer patch selection for image classification on megapixel to gigapixel images.

The pipeline reads top to bottom: patches → selection (no gradients) → models (hybrid propagation) →
engine (training) → command line.
"""

from dbps.engine.step import StepOutput, forward_backward, predict, train_step
from dbps.models import PatchClassifier, create_aggregator, create_encoder
from dbps.patches import FeaturePatches, ImagePatches, PatchSource
from dbps.selection import Method, PatchSelector, Sampling, Selection
from dbps.tasks import TaskSpec

__version__ = "0.1.0"

__all__ = [
    "FeaturePatches",
    "ImagePatches",
    "Method",
    "PatchClassifier",
    "PatchSelector",
    "PatchSource",
    "Sampling",
    "Selection",
    "StepOutput",
    "TaskSpec",
    "create_aggregator",
    "create_encoder",
    "forward_backward",
    "predict",
    "train_step",
]
