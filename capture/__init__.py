"""Capture: sources, readers, and the dispatch of frames to workers, one process per daemon."""
