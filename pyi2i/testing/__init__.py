"""Oracles for tests and benchmarks: the original release's networks and training loop, transcribed."""
