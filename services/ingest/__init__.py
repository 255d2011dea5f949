"""Ingest: council signals in (JSON API, Open311, Kafka), anonymised at the door, out to Kafka."""
