"""The aggregator: turns anonymised signals into publishable street needs."""
