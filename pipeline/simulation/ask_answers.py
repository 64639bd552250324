"""Answers to the ask in `readerfirst evaluate`, recorded as the answer page records them.

There is no web service in an evaluation with the `record` or `outbox` transport, so a simulated
reader's answer goes through the page's own steps without HTTP: the signed link of the topic
they chose is checked (`read_ask_token`), its reader found by public id and its edition among
those sent to them (`sent_edition`), the words cleaned (`clean_words`), and the need and the
answer recorded by `record_answer`, the function the page's POST calls. A link that fails any
check records nothing, as on the page.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from pipeline.audience.ask_tokens import read_ask_token
from pipeline.simulation.asks import SimulatedAnswer
from pipeline.store.database import Database
from pipeline.web.ask_answers import TooManyWords, clean_words, record_answer, sent_edition
from pipeline.web.reader_choices import find_reader

__all__ = ["record_simulated_answer"]


def record_simulated_answer(db: Database, secret: bytes, link: str, answer: SimulatedAnswer, *,
                            link_day: dt.date, today: dt.date, now: dt.datetime | None = None) -> bool:
    """Record `answer` given through the answer link `link`; False (nothing recorded) for a refused link.

    `link_day` is the day the link is checked on (its expiry is counted from the day it was
    made); `today` starts the need's `answer.days`; `now` is when the answer was given (default:
    the clock's now).
    """
    token = urlsplit(link).path.rsplit("/", 1)[-1]
    claim = read_ask_token(secret, token, link_day)
    if claim is None or claim.free_text or claim.topic != answer.topic:
        return False
    reader = find_reader(db, claim.public_id)
    if reader is None:
        return False
    edition_id = sent_edition(db, reader.id, claim.edition_key)
    if edition_id is None:
        return False
    try:
        words = clean_words(answer.words)
    except TooManyWords:
        return False
    record_answer(db, reader.id, edition_id, claim.topic, today + dt.timedelta(days=answer.days), words, now=now)
    return True
