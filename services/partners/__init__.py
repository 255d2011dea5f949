"""VCS partner access: aggregated needs over an API (JSON, GeoJSON, CSV), history, and signed webhooks."""
