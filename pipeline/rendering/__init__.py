"""Rendering: Jinja -> MJML -> HTML compiled once per edition, spliced and merged per reader."""

from __future__ import annotations

from pipeline.rendering.layout import GMAIL_CLIP_BYTES, EditionLayout, VariantBody
from pipeline.rendering.merge import MergeTemplate
from pipeline.rendering.mjml_rules import mjml_problems
from pipeline.rendering.message import RenderedMessage, merge_values, personalise
from pipeline.rendering.subject import SubjectTemplate
from pipeline.rendering.templates import TemplateSet

__all__ = [
    "GMAIL_CLIP_BYTES",
    "EditionLayout",
    "MergeTemplate",
    "RenderedMessage",
    "SubjectTemplate",
    "TemplateSet",
    "VariantBody",
    "merge_values",
    "mjml_problems",
    "personalise",
]
