"""What an answer to the ask changes: the reader's need (with their words), and the answer counted.

Plain functions over the database, without HTTP, so that the web page and the consent spool
apply an answer the same way. Recording the same answer twice changes nothing more: the need
takes the latest expiry and words, and the edition counts the answer once.
"""

from __future__ import annotations

import datetime as dt
import unicodedata

from sqlalchemy import select

from pipeline.audience.ask_tokens import edition_key
from pipeline.content.ask import ASK_SOURCE
from pipeline.store.database import Database
from pipeline.store.models import AskAnswer, ReaderNeed, SendLedgerEntry, utcnow
from pipeline.store.upsert import upsert_rows

__all__ = ["ASK_SOURCE", "MAX_WORDS_CHARS", "TooManyWords", "clean_words", "sent_edition", "record_answer",
           "active_needs"]

MAX_WORDS_CHARS = 500  # a sentence or two; the page's box says so, and the database keeps no essays


class TooManyWords(ValueError):
    """Free text longer than MAX_WORDS_CHARS: the page asks for fewer words and records nothing."""


def clean_words(raw: str) -> str | None:
    """The reader's words as kept: control and invisible formatting characters removed, spaces folded.

    None when nothing is left; raises TooManyWords when more than MAX_WORDS_CHARS remain.
    """
    # Cc (controls), Cf (bidi overrides, zero-width), Cs/Co/Cn: none of them is a word anyone typed to us.
    kept = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in raw)
    text = " ".join(unicodedata.normalize("NFC", kept).split())
    if len(text) > MAX_WORDS_CHARS:
        raise TooManyWords(f"{len(text)} characters")
    return text or None


def sent_edition(db: Database, reader_id: int, key: str) -> str | None:
    """The edition sent (or planned) to the reader whose ask-token key is `key`, or None."""
    with db.session() as session:
        editions = session.scalars(select(SendLedgerEntry.edition_id).where(SendLedgerEntry.reader_id == reader_id))
        return next((e for e in editions if edition_key(e) == key), None)


def active_needs(db: Database, reader_id: int, today: dt.date) -> dict[str, dt.date]:
    """The reader's needs still running on `today`, topic -> until."""
    with db.session() as session:
        return dict(session.execute(select(ReaderNeed.topic, ReaderNeed.until)
                                    .where(ReaderNeed.reader_id == reader_id, ReaderNeed.until >= today)).all())


def record_answer(db: Database, reader_id: int, edition_id: str, topic: str, until: dt.date, words: str | None,
                  *, now: dt.datetime | None = None) -> None:
    """The reader needs help with `topic` until `until` (in `words`), and answered the ask of `edition_id`."""
    now = now or utcnow()
    with db.session() as session:
        connection = session.connection()
        upsert_rows(connection, ReaderNeed.__table__,
                    [{"reader_id": reader_id, "topic": topic, "until": until, "source": ASK_SOURCE, "words": words}],
                    ["reader_id", "topic"], ["until", "source", "words"])
        upsert_rows(connection, AskAnswer.__table__,
                    [{"reader_id": reader_id, "edition_id": edition_id, "topic": topic, "words": words,
                      "until": until, "answered_at": now}],
                    ["reader_id", "edition_id", "topic"], ["words", "until"])
