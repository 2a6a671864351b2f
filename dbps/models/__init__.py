"""Learnable parts: patch encoders, aggregators, task heads and the patch classifier that joins them."""

from dbps.choices import BatchNormMode
from dbps.models.aggregators import AGGREGATORS, Aggregator, create_aggregator
from dbps.models.batchnorm import batchnorm_mode
from dbps.models.classifier import PatchClassifier
from dbps.models.encoders import ENCODERS, PatchEncoder, create_encoder
from dbps.models.heads import TaskHeads
from dbps.models.pos_enc import sinusoidal_encoding

__all__ = [
    "AGGREGATORS",
    "ENCODERS",
    "Aggregator",
    "BatchNormMode",
    "PatchClassifier",
    "PatchEncoder",
    "TaskHeads",
    "batchnorm_mode",
    "create_aggregator",
    "create_encoder",
    "sinusoidal_encoding",
]
