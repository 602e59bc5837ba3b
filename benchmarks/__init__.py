"""Benchmarks: the reference workload and `make bench`."""
