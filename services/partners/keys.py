"""Partner API keys: the shared key model (kept here so existing imports keep working)."""

from shared.keys import KEY_PREFIX, hash_key, new_key

__all__ = ["KEY_PREFIX", "hash_key", "new_key"]
