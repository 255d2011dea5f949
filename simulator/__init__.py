"""A load generator, not a service: realistic Camden council signals sent over HTTP, Open311 or Kafka.

Run it with `streetneeds simulate`; `make run` uses it for demo signals, tests and benchmarks for load.
"""
