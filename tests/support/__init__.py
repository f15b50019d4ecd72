"""Oracles, peers and helpers of the test suite, written independently of the code they check (tests import
`support.x`, benchmarks `tests.support.x`)."""
