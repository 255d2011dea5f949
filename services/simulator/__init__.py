"""A stand-in for council systems: realistic Camden signals sent over HTTP, Open311 or Kafka."""
