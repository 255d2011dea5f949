"""Settings of the feeds service (env prefix `FEEDS_`; DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS shared)."""

from __future__ import annotations

import re

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings

__all__ = ["FeedsSettings"]


class FeedsSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDS_", env_file=".local/stack.env", extra="ignore")

    host: str = Field("127.0.0.1", title="HTTP bind address")
    port: int = Field(8000, title="HTTP port", ge=1, le=65535)
    group_id: str = Field("feeds", title="Kafka consumer group for prompts.v1", min_length=1)
    base_url: str = Field(
        "http://127.0.0.1:8000",
        title="Public base URL",
        description="Absolute URL residents reach this service at; feeds' self links and ids use it.",
    )
    prompter_url: str = Field(
        "http://127.0.0.1:8003",
        title="Public URL of the prompter",
        description="Residents' offers of contact post there directly, and street pages link to its "
        "impact pages.",
    )
    notifier_url: str = Field(
        "http://127.0.0.1:8005",
        title="Public URL of the notifier",
        description="The e-mail alert form on street, ward and area pages posts there.",
    )
    tag_authority: str = Field(
        "streetneeds.org.uk,2026",
        title="tag: URI authority",
        description="`authority,date` of RFC 4151 tag URIs used as stable Atom/RSS/JSON Feed ids.",
    )
    publisher: str = Field("streetneeds", title="Publisher named in feeds and as CAP senderName")
    cap_sender: str = Field(
        "streetneeds@streetneeds.org.uk",
        title="CAP sender",
        description="CAP `sender`: globally unique, no spaces, commas or '<'/'&'.",
    )
    cap_buffer_m: float = Field(25.0, title="CAP polygon buffer around the street (metres)", gt=0, le=200)
    cap_cancel_visible_days: int = Field(3, title="Days a CAP Cancel stays in the alerts index", ge=1, le=60)
    subscription_unread_days: int = Field(
        365,
        title="Days a subscription's feed may go unread before it is deleted",
        description="docs/privacy.md, retention; a feed reader reads daily, so a year unread is abandoned.",
        ge=1,
    )
    purge_interval_s: float = Field(
        86400.0, title="Interval of the unread subscriptions purge (seconds)", gt=0
    )
    purge_first_delay_s: float = Field(
        60.0, title="First unread subscriptions purge after start (seconds)", ge=0
    )
    max_radius_m: int = Field(2000, title="Largest radius a subscription may ask for (metres)", ge=50)
    max_streets: int = Field(50, title="Most streets one subscription may list", ge=1)
    help_rate_per_minute: float = Field(2.0, title="'I can help' token refill per client per minute", gt=0)
    help_burst: int = Field(5, title="'I can help' burst per client (token bucket size)", ge=1)
    sse_heartbeat_s: float = Field(15.0, title="SSE heartbeat comment interval (seconds)", gt=0)
    sse_queue_size: int = Field(
        256, title="Live events buffered per SSE client before it is dropped (it resumes by id)", ge=8
    )
    sse_max_clients: int = Field(2000, title="Open event streams per replica (503 beyond)", ge=1)
    sse_max_per_client: int = Field(
        4, title="Open event streams per client address or IPv6 /64 (429 beyond)", ge=1
    )
    sse_replay_limit: int = Field(
        1000, title="Changes replayed to a resuming client; further back, one refresh event", ge=1
    )
    council_name: str = Field("Camden", title="The council's area, as residents call it (in messages)")
    notice_contact: str = Field(
        "",
        title="Phone/contact line printed on street and ward notices",
        description="For neighbours who are not online; set it to the council's or a local group's line.",
    )
    map_tile_url: str | None = Field(
        None,
        title="Map tile URL template (optional)",
        description="e.g. https://tiles.example.org/{z}/{x}/{y}.png. Unset: the map draws only our own "
        "streets, wards and boundary, which works offline.",
    )
    map_tile_attribution: str = Field("", title="Attribution shown with the map tiles (HTML allowed)")
    feed_cache_max_age_s: int = Field(60, title="Cache-Control max-age of feeds (seconds)", ge=0)
    feed_max_entries: int = Field(200, title="Most entries in one feed", ge=1)
    feed_cache_mb: float = Field(
        32.0,
        title="Memory for rendered feeds (MB)",
        description="An LRU of rendered documents by ETag, so one feed read by many renders once; 0 turns "
        "it off.",
        ge=0,
    )

    @field_validator("base_url", "prompter_url", "notifier_url")
    @classmethod
    def _absolute(cls, value: str, info: ValidationInfo) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            name = f"FEEDS_{str(info.field_name).upper()}"
            raise ValueError(f"{name} must be an absolute http(s) URL, e.g. https://feeds.example.org")
        return value.rstrip("/")

    @field_validator("tag_authority")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9.-]+,\d{4}(-\d{2}(-\d{2})?)?", value):
            raise ValueError("FEEDS_TAG_AUTHORITY must look like `example.org,2026` (RFC 4151)")
        return value

    @field_validator("cap_sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if re.search(r"[\s,<&]", value):
            raise ValueError("FEEDS_CAP_SENDER may not contain spaces, commas, '<' or '&' (CAP 1.2)")
        return value
