"""Benchmarks: `make bench` prints figures as ratios against references measured in the same run."""
