"""Versioned event contracts and the topic registry: imported by every service, never copied."""

from .categories import CATALOGUE, Category, CategoryInfo, Sensitivity, info
from .events import (
    AreaKind,
    Band,
    CouncilSignal,
    DeadLettered,
    Location,
    OpportunityLink,
    PromptEvent,
    PromptPublished,
    PromptRetired,
    ResidentResponded,
    SignalAction,
    SignalAnonymised,
    StreetNeedChanged,
    Trend,
)
from .topics import (
    ALL_TOPICS,
    COUNCIL_SIGNALS,
    DEAD_LETTERS,
    PROMPTS,
    RESIDENT_RESPONSES,
    SIGNALS_ANONYMISED,
    STREET_NEEDS,
    Topic,
)

__all__ = [
    "ALL_TOPICS", "CATALOGUE", "COUNCIL_SIGNALS", "DEAD_LETTERS", "PROMPTS", "RESIDENT_RESPONSES",
    "SIGNALS_ANONYMISED", "STREET_NEEDS", "AreaKind", "Band", "Category", "CategoryInfo",
    "CouncilSignal", "DeadLettered", "Location", "OpportunityLink", "PromptEvent",
    "PromptPublished", "PromptRetired", "ResidentResponded", "Sensitivity", "SignalAction",
    "SignalAnonymised", "StreetNeedChanged", "Topic", "Trend", "info",
]
