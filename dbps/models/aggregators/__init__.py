"""Aggregators, registered by name: 'CA', 'DA', 'AB', 'ABX', 'TransMIL'."""

from dbps.models.aggregators.ab import GatedAttentionAggregator
from dbps.models.aggregators.abx import ABMILXAggregator
from dbps.models.aggregators.base import AGGREGATORS, Aggregator, create_aggregator
from dbps.models.aggregators.ca import CrossAttentionAggregator
from dbps.models.aggregators.da import DualAttentionAggregator
from dbps.models.aggregators.transmil import TransMILAggregator

__all__ = [
    "AGGREGATORS",
    "ABMILXAggregator",
    "Aggregator",
    "CrossAttentionAggregator",
    "DualAttentionAggregator",
    "GatedAttentionAggregator",
    "TransMILAggregator",
    "create_aggregator",
]
