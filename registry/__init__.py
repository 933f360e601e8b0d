"""Yangtze River Delta imported-goods assurance registry."""

__version__ = "0.1.0"
