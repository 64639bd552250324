"""Simulated readers answering the ask as a person does: open the link, read the form, send it.

`AskBrowser.answer` GETs the answer link from the reader's copy on the web service, reads the
page's form (its action, its hidden fields such as the nonce, the radio buttons of "for how
long?"), fills in the reader's days and words, and POSTs it back with the `Origin` a browser
sends. Nothing is recorded by the GET (the page is prefetch-safe): only the POST from the page.
"""

from __future__ import annotations

import http.client
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

__all__ = ["AskBrowser", "AskForm", "read_ask_form"]

log = logging.getLogger("pipeline.emulator")

_USER_AGENT = "Mozilla/5.0 (readerfirst emulator; simulated reader)"


@dataclass
class AskForm:
    """The answer page's form as a browser sees it: where it posts, its hidden fields and choices."""

    action: str = ""
    hidden: dict[str, str] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)  # the radio values of "for how long?"
    checked_days: str = ""
    has_words: bool = False


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form: AskForm | None = None
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form is None and named.get("method", "").lower() == "post":
            self.form, self._inside = AskForm(action=named.get("action", "")), True
        elif not self._inside or self.form is None:
            return
        elif tag == "input" and named.get("type") == "hidden" and named.get("name"):
            self.form.hidden[named["name"]] = named.get("value", "")
        elif tag == "input" and named.get("type") == "radio" and named.get("name") == "days":
            self.form.days.append(named.get("value", ""))
            if "checked" in named:
                self.form.checked_days = named.get("value", "")
        elif tag == "textarea" and named.get("name") == "words":
            self.form.has_words = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def read_ask_form(page: str) -> AskForm | None:
    """The first POST form of an answer page, or None when the page has none (a refused link)."""
    parser = _FormParser()
    parser.feed(page)
    return parser.form


class AskBrowser:
    """Answers ask links over HTTP, as a reader's browser would; counts what it did."""

    def __init__(self, *, timeout: float = 5.0):
        self.timeout = timeout
        self.answered = 0
        self.failed = 0
        self._lock = threading.Lock()

    def answer(self, url: str, days: int, words: str) -> int | None:
        """Open `url`, fill in its form (`days`, or the page's default; `words`) and send it: the POST's status."""
        try:
            status, page = self._fetch(urllib.request.Request(url, headers={"User-Agent": _USER_AGENT}))
            form = read_ask_form(page) if status == 200 else None
            if form is None:
                return self._gave_up(url, status)
            fields = dict(form.hidden)
            fields["days"] = str(days) if str(days) in form.days else form.checked_days
            if form.has_words:
                fields["words"] = words
            parts = urlsplit(url)
            body = urlencode(fields).encode()
            status, _ = self._fetch(urllib.request.Request(
                urljoin(url, form.action or parts.path), data=body, method="POST",
                headers={"User-Agent": _USER_AGENT, "Content-Type": "application/x-www-form-urlencoded",
                         "Origin": f"{parts.scheme}://{parts.netloc}", "Referer": url}))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as failure:
            return self._gave_up(url, None, failure)
        if status != 200:
            return self._gave_up(url, status)
        with self._lock:
            self.answered += 1
        return status

    def _fetch(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.status, answer.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode("utf-8", "replace")

    def _gave_up(self, url: str, status: int | None, failure: BaseException | None = None) -> None:
        with self._lock:
            self.failed += 1
        log.warning("a simulated reader could not answer the ask at %s (status %s%s)", urlsplit(url).path[:12] + "...",
                    status, f", {type(failure).__name__}" if failure else "")
        return None
