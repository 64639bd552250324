"""Editions and their sections, the topic taxonomy, and choosing sections for a reader."""

from __future__ import annotations

from pipeline.content.edition import Edition, Image, Link, Section, load_edition
from pipeline.content.policy import PolicySettings, choose_sections, editorial_sections
from pipeline.content.selection import Pick, Selection, select_sections
from pipeline.content.topics import Taxonomy, load_taxonomy

__all__ = [
    "Edition",
    "Image",
    "Link",
    "PolicySettings",
    "Pick",
    "Section",
    "Selection",
    "Taxonomy",
    "choose_sections",
    "editorial_sections",
    "load_edition",
    "load_taxonomy",
    "select_sections",
]
