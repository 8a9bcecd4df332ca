"""Backbone sources: one adapter module per source, all following ``base.Backbone``."""

from zoo.backbones.base import Backbone, LayerGroup, make_data_config

__all__ = ["Backbone", "LayerGroup", "make_data_config"]
