"""Benchmarks: each module prints its figures and the bare limit measured in the same run."""
