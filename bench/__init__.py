"""Benchmarks (``make bench``), kept apart from tests. Each module prints its figures, each
with a baseline measured in the same run, as lines starting with ``FIGURE``."""
