"""Helpers for the aggregator benchmark: load, bench databases, processes, and the Quix Streams peer."""
