"""`/p/{token}`: the preference centre, where readers choose topics, state needs, or unsubscribe.

Every POST must carry the form token of the page it came from and, if the browser names an
origin, come from this site; otherwise it is refused with 403 and changes nothing. An invalid
form is answered 400 with the reasons and also changes nothing. A valid save the database
cannot take is kept in the consent spool (pipeline/web/consent_spool.py) and applied in order
as soon as it can; while earlier decisions wait there, later ones queue behind them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pipeline.audience.tokens import read_token
from pipeline.content.topics import Taxonomy
from pipeline.web import consent_spool
from pipeline.web.forms import guarded_form, make_form_token
from pipeline.web.pages import NeedRow, PreferencesPage, not_found, page, unavailable
from pipeline.web.reader_choices import Preferences, ReaderView, find_reader, load_preferences, save_preferences
from pipeline.web.unsubscribe import PREFERENCES, unsubscribe_surely

__all__ = ["NEED_ROWS", "NEED_MIN_DAYS", "NEED_MAX_DAYS", "NEED_DEFAULT_DAYS", "Choices", "read_choices",
           "preferences_page", "preferences_submit"]

NEED_ROWS = 2
NEED_MIN_DAYS, NEED_DEFAULT_DAYS, NEED_MAX_DAYS = 30, 45, 60


@dataclass
class Choices:
    """A submitted preference form, read and checked."""

    checked: set[str]
    needs: list[tuple[str, dt.date]]
    rows: list[NeedRow]  # as submitted, to show the form again when it has errors
    errors: list[str]


def _row(topic: str, until: dt.date | None, today: dt.date) -> NeedRow:
    earliest, latest = today + dt.timedelta(NEED_MIN_DAYS), today + dt.timedelta(NEED_MAX_DAYS)
    until = until or today + dt.timedelta(NEED_DEFAULT_DAYS)
    # A need stated weeks ago may now be under 30 days away: it stays valid as it is.
    return NeedRow(topic=topic, until=until, earliest=min(earliest, until), latest=max(latest, until))


def _rows(needs: dict[str, dt.date], today: dt.date) -> list[NeedRow]:
    rows = [_row(topic, until, today) for topic, until in list(needs.items())[:NEED_ROWS]]
    return rows + [_row("", None, today) for _ in range(NEED_ROWS - len(rows))]


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return None


def read_choices(form: dict[str, list[str]], taxonomy: Taxonomy, today: dt.date,
                 current_needs: dict[str, dt.date]) -> Choices:
    """The topics and needs a form asks for, with the reasons it cannot be saved (if any)."""
    checked = {topic for topic in form.get("topic", []) if topic in taxonomy}
    earliest, latest = today + dt.timedelta(NEED_MIN_DAYS), today + dt.timedelta(NEED_MAX_DAYS)
    needs: list[tuple[str, dt.date]] = []
    rows: list[NeedRow] = []
    errors: list[str] = []
    for number in range(1, NEED_ROWS + 1):
        topic = (form.get(f"need_topic_{number}") or [""])[0].strip()
        until_text = (form.get(f"need_until_{number}") or [""])[0]
        until = _date(until_text)
        rows.append(_row(topic if topic in taxonomy else "", until, today))
        if not topic:
            continue
        if topic not in taxonomy:
            errors.append(f"Need {number}: choose a topic from the list.")
        elif any(topic == chosen for chosen, _ in needs):
            errors.append(f"Need {number}: {taxonomy.label(topic)} is already chosen above; choose another topic.")
        elif until is None:
            errors.append(f"Need {number}: give the date as YYYY-MM-DD.")
        elif not earliest <= until <= latest and current_needs.get(topic) != until:
            errors.append(f"Need {number}: choose a date between {earliest.isoformat()} and {latest.isoformat()}.")
        else:
            needs.append((topic, until))
    return Choices(checked=checked, needs=needs, rows=rows, errors=errors)


def _reader(request: Request) -> str | None:
    return read_token(request.app.state.web.secret, request.path_params["token"], PREFERENCES)


def _view(request: Request, reader: ReaderView, checked: set[str], rows: list[NeedRow], *,
          saved: bool = False, errors: list[str] | None = None) -> PreferencesPage:
    state = request.app.state.web
    taxonomy: Taxonomy = state.taxonomy
    return PreferencesPage(
        action=request.url.path, form_token=make_form_token(state.secret, reader.public_id),
        topics=list(taxonomy.labels.items()), checked=checked, needs=rows,
        min_days=NEED_MIN_DAYS, max_days=NEED_MAX_DAYS, greeting=reader.first_name,
        unsubscribed=reader.unsubscribed, saved=saved, errors=errors or [])


async def _find(request: Request) -> ReaderView | None:
    public_id = _reader(request)
    if public_id is None:
        return None
    return await run_in_threadpool(find_reader, request.app.state.web.db, public_id)


async def preferences_page(request: Request) -> Response:
    """GET: the form, prefilled with what the reader declared."""
    reader = await _find(request)
    if reader is None:
        return not_found()
    today = request.app.state.web.today()
    current = await run_in_threadpool(load_preferences, request.app.state.web.db, reader.id, today)
    return page("preferences.html", title="Your preferences",
                view=_view(request, reader, set(current.topics), _rows(current.needs, today)))


_REFUSALS = {"origin": "This form was sent from another site, so nothing was changed.",
             "token": "This form has expired or did not come from this page, so nothing was changed. "
                      "Reload the page and try again."}


def _refused(message: str) -> Response:
    return page("message.html", 403, title="Please reload the page", message=message)


async def preferences_submit(request: Request) -> Response:
    """POST: save topics and needs, or unsubscribe; refused without a valid form token."""
    state = request.app.state.web
    reader = await _find(request)
    if reader is None:
        return not_found()
    form = await guarded_form(request, secret=state.secret, subject=reader.public_id,
                              public_url=state.settings.public_url, refused=lambda why: _refused(_REFUSALS[why]))
    if isinstance(form, Response):
        return form
    if (form.get("action") or ["save"])[0] == "unsubscribe":
        if await unsubscribe_surely(request, reader.public_id, via="preference centre") not in (True, False):
            return unavailable()
        return page("unsubscribe.html", title="Unsubscribed", done=True, action="", preferences_url="")
    today = state.today()
    current = await run_in_threadpool(load_preferences, state.db, reader.id, today)
    choices = read_choices(form, state.taxonomy, today, current.needs)
    if choices.errors:
        return page("preferences.html", 400, title="Your preferences",
                    view=_view(request, reader, choices.checked, choices.rows, errors=choices.errors))
    shown = list(current.needs)[:NEED_ROWS]  # what the page showed, as _rows does
    outcome = await run_in_threadpool(_save_or_keep, state, reader, list(state.taxonomy.labels), choices, shown)
    if outcome is None:
        return unavailable()
    if outcome == _SAVED:
        saved = await run_in_threadpool(load_preferences, state.db, reader.id, today)
    else:  # kept in the spool, applied shortly: show what the reader chose
        saved = Preferences(topics={topic: 1.0 for topic in choices.checked}, needs=dict(choices.needs))
    return page("preferences.html", title="Your preferences",
                view=_view(request, reader, set(saved.topics), _rows(saved.needs, today), saved=True))


_SAVED, _KEPT = "saved", "kept"


def _save_or_keep(state, reader: ReaderView, offered: list[str], choices: Choices, shown: list[str]) -> str | None:
    """Save now (`saved`), or keep the save in the spool (`kept`); None when neither could take it."""
    if not state.spool.pending():
        try:
            save_preferences(state.db, reader.id, offered=offered, checked=choices.checked, needs=choices.needs,
                             shown_needs=shown)
            return _SAVED
        except SQLAlchemyError:
            pass
    try:
        state.spool.keep(consent_spool.PREFERENCES, reader.public_id, offered=offered,
                         checked=sorted(choices.checked), needs=[(t, u.isoformat()) for t, u in choices.needs],
                         shown_needs=shown)
    except OSError:
        return None
    return _KEPT
