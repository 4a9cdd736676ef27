"""Fidelia: one loyalty engine behind many documented doors."""

__version__ = "0.1.0"
