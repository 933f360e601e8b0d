"""Benchmarks: data generators and timing harnesses."""
