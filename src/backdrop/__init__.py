"""Backdrop: personalized product creatives for e-commerce ads."""

__version__ = "0.1.0"
