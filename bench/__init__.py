"""Benchmarks run beside peer libraries on the same broker in one run: ``python -m bench.run``.

Not a test: nothing here asserts; it measures and prints. See docs/benchmarks.md.
"""
