"""Aggregators, registered by name: 'CA', 'DA', 'AB', 'ABX'."""

from dbps.models.aggregators.ab import GatedAttentionAggregator
from dbps.models.aggregators.abx import ABMILXAggregator
from dbps.models.aggregators.base import AGGREGATORS, Aggregator, create_aggregator
from dbps.models.aggregators.ca import CrossAttentionAggregator
from dbps.models.aggregators.da import DualAttentionAggregator

__all__ = [
    "AGGREGATORS",
    "ABMILXAggregator",
    "Aggregator",
    "CrossAttentionAggregator",
    "DualAttentionAggregator",
    "GatedAttentionAggregator",
    "create_aggregator",
]
