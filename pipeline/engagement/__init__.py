"""Engagement: provider events normalised, stored once, and learned from."""

from __future__ import annotations

from pipeline.engagement.events import ENGAGEMENT, SUPPRESSING, EventType, NormalisedEvent

__all__ = ["ENGAGEMENT", "SUPPRESSING", "EventType", "NormalisedEvent"]
