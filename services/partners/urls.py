"""Webhook URL checks: the shared guard (kept here so existing imports keep working)."""

from shared.urls import UnsafeUrl, check_webhook_url

__all__ = ["UnsafeUrl", "check_webhook_url"]
