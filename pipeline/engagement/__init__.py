"""Engagement: provider events normalised, stored once, and learned from."""

from __future__ import annotations

from pipeline.engagement.events import ENGAGEMENT, SUPPRESSING, EventType, NormalisedEvent
from pipeline.engagement.learning import LearningReport, apply_events, expected_ctr, topic_posterior

__all__ = ["ENGAGEMENT", "SUPPRESSING", "EventType", "LearningReport", "NormalisedEvent", "apply_events",
           "expected_ctr", "topic_posterior"]
