"""Benchmarks that print figures: ``emotiond bench`` against fer, the soak run, the input pipeline."""
