"""Benchmarks: each module prints its figures as JSON. Run with `make bench`."""
