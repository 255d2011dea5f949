"""The notifier: residents' e-mail alerts (double opt-in, instant or digest); the only holder of addresses."""
