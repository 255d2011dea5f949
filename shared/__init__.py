"""streetneeds' own shared code: contracts, settings, Kafka and database plumbing, geometry."""
