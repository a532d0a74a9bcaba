"""Test support shared by the test suite and the benchmarks (nothing here ships with ml-batch)."""
