"""Simulated readers inside the SendGrid emulator: opens, clicks, unsubscribes and spam reports.

With a reader model and a seed configured (`--reader-model FILE --reader-seed N`), every
message the emulator delivers is read by a simulated reader, keyed on the recipient's address
exactly as in `readerfirst evaluate`, so both agree on who likes what. What the reader got is
read from the message itself: the sections are the links of the HTML that carry
`rf_s=<section id>`, in document order, and a click reports the first such link of the clicked
section. The sections' topics come from the edition file, found by the `edition_id` custom arg
(or the links' `rf_e`) in the editions folder (`--reader-editions`, default `editions/`).

Drift is counted in editions as this emulator sees them: the n-th distinct edition id it
delivers is edition n. The events go out with the delivery events, signed, to the webhook.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from pipeline.content.edition import load_edition
from pipeline.emulator.answers import AskBrowser
from pipeline.emulator.inbound import InboundPoster, InboundReply
from pipeline.errors import PipelineError
from pipeline.rendering.links import EDITION_PARAM
from pipeline.simulation.engagement import response_events, section_links_in_html
from pipeline.simulation.asks import AskHabit, simulated_answer
from pipeline.simulation.models import ReaderModel, load_reader_model
from pipeline.simulation.readers import ShownSection, SimulatedAudience
from pipeline.simulation.replies import ReplyHabit, simulated_reply

__all__ = ["SimulatedReaders"]

log = logging.getLogger("pipeline.emulator")

_NOT_EVENT_FIELDS = ("event", "sg_event_id", "response", "timestamp")


class SimulatedReaders:
    """Turns the `delivered` events of one accepted request into what its readers then did."""

    def __init__(self, model: ReaderModel, seed: int, editions: Path | str, *,
                 replies: InboundPoster | None = None, reply_habit: ReplyHabit | None = None,
                 ask_habit: AskHabit | None = None):
        self.audience = SimulatedAudience(model, seed)
        # Readers answer the ask in their copy (over HTTP, on the web service) only with a habit set.
        self.ask_habit = ask_habit
        self.asks = AskBrowser() if ask_habit is not None else None
        self.replies = replies  # where readers' replies are posted (Inbound Parse), if anywhere
        self.reply_habit = reply_habit or ReplyHabit()
        self.editions = Path(editions)
        self._order: dict[str, int] = {}  # edition id -> its number, in the order first delivered
        self._topics: dict[str, dict[str, tuple[str, ...]]] = {}  # edition id -> section id -> topics
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    @classmethod
    def from_files(cls, model: Path | str, seed: int, editions: Path | str, *,
                   replies: InboundPoster | None = None, reply_habit: ReplyHabit | None = None,
                   ask_habit: AskHabit | None = None) -> SimulatedReaders:
        """Readers of the reader model file `model`; raises InvalidReaderModel naming what is wrong."""
        return cls(load_reader_model(model), seed, editions, replies=replies, reply_habit=reply_habit,
                   ask_habit=ask_habit)

    def edition_number(self, edition_id: str) -> int:
        """The number of this edition as the emulator met them (1 for the first)."""
        with self._lock:
            return self._order.setdefault(edition_id, len(self._order) + 1)

    def _edition_topics(self, edition_id: str) -> dict[str, tuple[str, ...]]:
        found = self._topics.get(edition_id)
        if found is not None:
            return found
        path = self._find(edition_id)
        topics: dict[str, tuple[str, ...]] = {}
        if path is not None:
            try:
                topics = {s.id: s.topics for s in load_edition(path).sections}
            except PipelineError as problem:
                log.warning("simulated readers cannot read %s: %s", path, problem)
        if not topics:
            if edition_id not in self._warned:
                self._warned.add(edition_id)
                log.warning("simulated readers: no edition %r in %s; its sections have no topics to like",
                            edition_id, self.editions)
            return {}  # not cached: the file may be written before the next request
        self._topics[edition_id] = topics
        return topics

    def _find(self, edition_id: str) -> Path | None:
        for suffix in (".yaml", ".yml"):
            named = self.editions / f"{edition_id}{suffix}"
            if named.is_file():
                return named
        # An edition file need not be named after its id: look inside the others.
        for path in sorted(self.editions.glob("*.y*ml")):
            if path.name in ("topics.yaml", "topics.yml"):
                continue
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(data, dict) and str(data.get("id")) == edition_id:
                return path
        return None

    def events_for(self, delivered: Sequence[dict[str, Any]], html: str | None,
                   reply_to: Mapping[str, str] | None = None,
                   ask_links: Mapping[str, Mapping[str, str]] | None = None) -> list[dict[str, Any]]:
        """The engagement events of the readers of `delivered` (one request's delivered events).

        Readers who read it may also write back to their address in `reply_to` (address ->
        reply-to): their reply is posted to Inbound Parse at once, when `replies` is set. And
        when `ask_habit` is set, a reader whose copy carries the ask (`ask_links`: address ->
        topic -> answer link) may answer it on the web service, as they would in a browser.
        """
        if not delivered or not html:
            return []
        links = section_links_in_html(html)
        if not links:
            return []
        events: list[dict[str, Any]] = []
        for event in delivered:
            edition_id = str(event.get("edition_id") or "") or self._tagged_edition(links)
            if not edition_id:
                continue
            topics = self._edition_topics(edition_id)
            shown = [ShownSection(sid, topics.get(sid, ()), i) for i, sid in enumerate(links)]
            number = self.edition_number(edition_id)
            response = self.audience.respond(str(event["email"]), number, shown)
            address = (reply_to or {}).get(str(event["email"]).lower())
            if self.replies is not None and address and response.opened:
                self._reply(str(event["email"]), address, number, shown)
            offered = (ask_links or {}).get(str(event["email"]).lower())
            if self.asks is not None and offered and response.opened:
                self._answer(str(event["email"]), offered, number, shown)
            base = {k: v for k, v in event.items() if k not in _NOT_EVENT_FIELDS}
            events += response_events(response, base=base, section_urls=links, delivered_at=int(event["timestamp"]))
        return events

    def _reply(self, email: str, address: str, number: int, shown: list[ShownSection]) -> None:
        assert self.replies is not None
        text = simulated_reply(self.audience, email, number, shown, self.reply_habit)
        if text is not None:
            self.replies.post(InboundReply(from_address=email, to_address=address,
                                           subject="Re: your newsletter", text=text))

    def _answer(self, email: str, offered: Mapping[str, str], number: int, shown: list[ShownSection]) -> None:
        assert self.asks is not None and self.ask_habit is not None
        answer = simulated_answer(self.audience, email, number, list(offered), shown, self.ask_habit)
        if answer is not None:
            self.asks.answer(offered[answer.topic], answer.days, answer.words)

    @staticmethod
    def _tagged_edition(links: dict[str, str]) -> str:
        first = next(iter(links.values()))
        return dict(parse_qsl(urlsplit(first).query)).get(EDITION_PARAM, "")
