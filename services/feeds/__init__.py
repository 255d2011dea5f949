"""The feeds service: residents' subscriptions and feeds, CAP alerts, and "I can help"."""
