"""Benchmarks: each script prints medians and ratios against a baseline measured in the same run."""
