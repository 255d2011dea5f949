"""Apache Kafka's own perf tools on the bench's broker: the ceiling row."""
