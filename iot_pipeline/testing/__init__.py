"""Data generators shared by the test suite and the benchmarks (no test framework imported)."""
