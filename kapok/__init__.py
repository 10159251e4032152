"""Kapok (木棉): edge-device toolkit for smart communities."""

__version__ = "0.1.0"
