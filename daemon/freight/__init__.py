"""Freight: a download manager with a segmented, resumable engine, a daemon and a browser link."""

__version__ = "0.1.0"
