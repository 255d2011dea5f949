"""The streetneeds services: ingest -> aggregator -> prompter -> feeds, talking only through Kafka."""
