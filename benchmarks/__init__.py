"""specinterp benchmarks: each case timed side by side with its peer in one run.

Run them with ``python -m benchmarks``.
"""
