"""The pages readers see: unsubscribe, preferences, and the plain refusal for a bad link.

Templates live here as strings, not files, so the package needs no data files to serve them.
Jinja autoescapes every value: names and topic labels come from imports and editors and are
never trusted as HTML. Pages are plain, accessible and usable on a phone: one column, labels
on every control, large targets, visible focus, no script, no external asset.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

__all__ = ["NeedRow", "PreferencesPage", "AskPage", "page", "bad_link", "not_found", "unavailable", "PAGE_HEADERS", "RETRY_AFTER_SECONDS"]

RETRY_AFTER_SECONDS = 30

# Tokens sit in the URL: no referrer may carry them away, no cache keep them, no frame host them.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",  # every page sits behind a reader's own token
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}

_LAYOUT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{{ title }}</title>
<style>
  :root { color-scheme: light; }
  body { margin: 0; background: #f4f4f1; color: #1a1a1a; font: 1.0625rem/1.5 system-ui, -apple-system,
         "Segoe UI", Roboto, Arial, sans-serif; }
  main { max-width: 36rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
  .card { background: #fff; border: 1px solid #d6d6d0; border-radius: .5rem; padding: 1.25rem; margin-bottom: 1.25rem; }
  h1 { font-size: 1.5rem; line-height: 1.25; margin: 0 0 1rem; }
  h2 { font-size: 1.15rem; margin: 0 0 .5rem; }
  p { margin: 0 0 1rem; }
  fieldset { border: 0; margin: 0 0 1.25rem; padding: 0; }
  legend { font-weight: 600; margin-bottom: .5rem; padding: 0; }
  .hint { color: #4a4a45; font-size: .95rem; }
  .choice { display: flex; align-items: center; gap: .6rem; min-height: 2.75rem; }
  .choice input { width: 1.35rem; height: 1.35rem; margin: 0; }
  .need { display: grid; grid-template-columns: 1fr; gap: .35rem; margin-bottom: 1rem; }
  @media (min-width: 30rem) { .need { grid-template-columns: 1fr 1fr; } }
  label { cursor: pointer; }
  select, input[type=date] { font: inherit; min-height: 2.75rem; padding: .25rem .5rem; border: 1px solid #77776f;
                             border-radius: .35rem; background: #fff; color: inherit; width: 100%; box-sizing: border-box; }
  button { font: inherit; font-weight: 600; min-height: 2.75rem; padding: .5rem 1.25rem; border-radius: .35rem;
           border: 2px solid #1f4e79; background: #1f4e79; color: #fff; cursor: pointer; }
  button.quiet { background: #fff; color: #8a1c1c; border-color: #8a1c1c; }
  :focus-visible { outline: 3px solid #e0a800; outline-offset: 2px; }
  .status { border-left: 4px solid #2e7d32; padding: .5rem .75rem; background: #eef6ee; }
  .errors { border-left: 4px solid #8a1c1c; padding: .5rem .75rem; background: #fbeeee; }
  .errors ul { margin: 0; padding-left: 1.1rem; }
  a { color: #1f4e79; }
</style>
</head>
<body>
<main>
{% block content %}{% endblock %}
</main>
</body>
</html>
"""

_NOT_FOUND = """{% extends "layout.html" %}{% block content %}
<div class="card">
<h1>This link does not work</h1>
<p>It may be incomplete. Use the link in your most recent email.</p>
</div>
{% endblock %}"""

_MESSAGE = """{% extends "layout.html" %}{% block content %}
<div class="card">
<h1>{{ title }}</h1>
<p>{{ message }}</p>
</div>
{% endblock %}"""

_UNSUBSCRIBE = """{% extends "layout.html" %}{% block content %}
<div class="card">
{% if done %}
<h1>You are unsubscribed</h1>
<p role="status">You will get no more editions of this newsletter at this address.</p>
{% else %}
<h1>Unsubscribe?</h1>
<p>You will get no more editions of this newsletter at this address.</p>
<form method="post" action="{{ action }}">
<input type="hidden" name="confirm" value="yes">
<button type="submit">Unsubscribe</button>
</form>
{% endif %}
</div>
{% if not done and preferences_url %}
<p class="hint">Too much mail on topics you do not want?
<a href="{{ preferences_url }}">Choose your topics instead</a>.</p>
{% endif %}
{% endblock %}"""

_PREFERENCES = """{% extends "layout.html" %}{% block content %}
<h1>Your newsletter preferences</h1>
{% if view.greeting %}<p>Hello {{ view.greeting }},</p>{% endif %}
{% if view.saved %}<p class="status" role="status">Saved. Your next edition will follow these choices.</p>{% endif %}
{% if view.errors %}
<div class="errors" role="alert"><p>Nothing was changed:</p><ul>
{% for error in view.errors %}<li>{{ error }}</li>{% endfor %}
</ul></div>
{% endif %}
{% if view.unsubscribed %}
<p class="status" role="status">You are unsubscribed: you receive no editions.</p>
{% endif %}
<form method="post" action="{{ view.action }}" class="card" id="preferences">
<input type="hidden" name="form_token" value="{{ view.form_token }}">
<fieldset>
<legend>Topics you want to read about</legend>
<p class="hint">We put the sections on these topics first.</p>
{% for slug, label in view.topics %}
<div class="choice">
<input type="checkbox" name="topic" value="{{ slug }}" id="topic-{{ slug }}"{% if slug in view.checked %} checked{% endif %}>
<label for="topic-{{ slug }}">{{ label }}</label>
</div>
{% endfor %}
</fieldset>
<fieldset>
<legend>Anything you need help with soon?</legend>
<p class="hint">Up to two topics you need in the next {{ view.min_days }} to {{ view.max_days }} days.
We put them first until the date you choose.</p>
{% for need in view.needs %}
<div class="need">
<div>
<label for="need-topic-{{ loop.index }}">Need {{ loop.index }}</label>
<select name="need_topic_{{ loop.index }}" id="need-topic-{{ loop.index }}">
<option value=""{% if not need.topic %} selected{% endif %}>Nothing</option>
{% for slug, label in view.topics %}
<option value="{{ slug }}"{% if slug == need.topic %} selected{% endif %}>{{ label }}</option>
{% endfor %}
</select>
</div>
<div>
<label for="need-until-{{ loop.index }}">Until</label>
<input type="date" name="need_until_{{ loop.index }}" id="need-until-{{ loop.index }}"
 value="{{ need.until }}" min="{{ need.earliest }}" max="{{ need.latest }}">
</div>
</div>
{% endfor %}
</fieldset>
<button type="submit" name="action" value="save">Save preferences</button>
</form>
{% if not view.unsubscribed %}
<form method="post" action="{{ view.action }}" class="card" id="unsubscribe">
<h2>Unsubscribe</h2>
<p>Stop all editions of this newsletter.</p>
<input type="hidden" name="form_token" value="{{ view.form_token }}">
<button type="submit" name="action" value="unsubscribe" class="quiet">Unsubscribe from everything</button>
</form>
{% endif %}
{% endblock %}"""

_ASK = """{% extends "layout.html" %}{% block content %}
{% if view.saved %}
<div class="card">
<h1>Thank you{% if view.greeting %}, {{ view.greeting }}{% endif %}</h1>
<p class="status" role="status">Saved: you need help with {{ view.saved }} until {{ view.until }}.
Your next editions put it first.</p>
</div>
{% if view.second %}
<div class="card">
<h2>And the second thing you need?</h2>
<ul>
{% for label, url in view.second %}<li><a href="{{ url }}">{{ label }}</a></li>
{% endfor %}</ul>
</div>
{% endif %}
{% else %}
<h1>What do you need in the next 30-60 days?</h1>
{% if view.errors %}
<div class="errors" role="alert"><p>Nothing was saved:</p><ul>
{% for error in view.errors %}<li>{{ error }}</li>{% endfor %}
</ul></div>
{% endif %}
<form method="post" action="{{ view.action }}" class="card" id="ask">
<input type="hidden" name="form_token" value="{{ view.form_token }}">
{% if view.topic %}
<p>You need help with <strong>{{ view.label }}</strong>.</p>
{% else %}
<label for="ask-topic">Which topic is it closest to?</label>
<select name="topic" id="ask-topic" required>
<option value="">Choose a topic</option>
{% for slug, label in view.topics %}<option value="{{ slug }}"{% if slug == view.chosen %} selected{% endif %}>{{ label }}</option>
{% endfor %}</select>
{% endif %}
<fieldset>
<legend>For how long?</legend>
{% for days in view.days %}
<div class="choice">
<input type="radio" name="days" value="{{ days }}" id="days-{{ days }}"{% if days == view.default_days %} checked{% endif %}>
<label for="days-{{ days }}">{{ days }} days</label>
</div>
{% endfor %}
</fieldset>
<label for="ask-words">In your own words (optional)</label>
<p class="hint">What exactly do you need? At most {{ view.max_words }} characters. We keep it with your answer
and may quote a short one back to you.</p>
<textarea name="words" id="ask-words" rows="3" maxlength="{{ view.max_words }}"
 style="width:100%;box-sizing:border-box;font:inherit">{{ view.words }}</textarea>
<p><button type="submit">Save what I need</button></p>
</form>
{% endif %}
{% endblock %}"""

_ENVIRONMENT = Environment(
    loader=DictLoader({"layout.html": _LAYOUT, "not_found.html": _NOT_FOUND, "message.html": _MESSAGE,
                       "unsubscribe.html": _UNSUBSCRIBE, "preferences.html": _PREFERENCES, "ask.html": _ASK}),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
)


@dataclass(frozen=True)
class NeedRow:
    """One need row of the preference form: the topic chosen (or none) and its date bounds."""

    topic: str
    until: dt.date
    earliest: dt.date
    latest: dt.date


@dataclass
class PreferencesPage:
    """Everything the preference page shows."""

    action: str
    form_token: str
    topics: list[tuple[str, str]]  # (slug, label) in the taxonomy's order
    checked: set[str]
    needs: list[NeedRow]
    min_days: int
    max_days: int
    greeting: str = ""
    unsubscribed: bool = False
    saved: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class AskPage:
    """Everything the ask's answer page shows: the form, or the confirmation and the second need."""

    action: str
    form_token: str
    topic: str  # the one-click answer's topic; "" when the reader chooses it on the page
    label: str
    topics: list[tuple[str, str]]
    days: tuple[int, ...]
    default_days: int
    max_words: int
    greeting: str = ""
    chosen: str = ""
    words: str = ""
    errors: list[str] = field(default_factory=list)
    saved: str = ""  # the label of the need just saved
    until: str = ""
    second: list[tuple[str, str]] = field(default_factory=list)  # (label, link) offered for the second need


def page(template: str, status: int = 200, **context: object) -> HTMLResponse:
    """`template` rendered with `context` as an HTML response with the pages' safety headers."""
    html = _ENVIRONMENT.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def not_found() -> HTMLResponse:
    """The plain 404 for a forged, altered or stale link: it says nothing of why."""
    return page("not_found.html", 404, title="Link not valid")


def bad_link() -> HTMLResponse:
    """The plain 400 for an ask link that is forged, altered or past its date: it says nothing of which."""
    return page("message.html", 400, title="This link does not work",
                message="It may be incomplete or too old. Use the link in your most recent email.")


def unavailable() -> HTMLResponse:
    """503 with Retry-After: nothing was changed, and trying again shortly will work."""
    response = page("message.html", 503, title="Please try again in a minute",
                    message="We could not save this just now, and nothing was changed. Please try again in a minute.")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
