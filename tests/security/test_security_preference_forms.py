"""The preference centre under attack: CSRF, forged links, and markup in names and labels."""

from __future__ import annotations

import time

import httpx

from pipeline.audience.tokens import make_token
from pipeline.settings import Settings
from pipeline.store.models import Reader
from pipeline.web import create_app, running_server
from pipeline.web.forms import make_form_token
from tests.test_engagement_store import add_reader
from tests.test_web_preferences import (  # noqa: F401 - reader and site are fixtures
    SECRET,
    TODAY,
    form_token,
    interests,
    needs,
    page_url,
    reader,
    site,
)


def test_post_without_a_valid_form_token_is_refused(site, db, reader):
    """Without a form token, or with a forged, foreign or expired one, the POST is refused 403 and changes nothing."""
    url = page_url(site, reader)
    other = add_reader(db, "bob@example.com")
    with db.session() as session:
        other_public_id = session.get(Reader, other).public_id
    before = (interests(db, reader.id), needs(db, reader.id))
    tokens = [None, "", "123.abc", f"{int(time.time())}.{'0' * 32}",
              make_form_token(SECRET, other_public_id),
              make_form_token(b"another-secret", reader.public_id),
              make_form_token(SECRET, reader.public_id, now=time.time() - 5 * 3600)]
    for token in tokens:
        form = {"topic": ["data"], "action": "save"}
        if token is not None:
            form["form_token"] = token
        assert httpx.post(url, data=form).status_code == 403, token
        unsubscribe = {"action": "unsubscribe", **({"form_token": token} if token is not None else {})}
        assert httpx.post(url, data=unsubscribe).status_code == 403, token
    assert (interests(db, reader.id), needs(db, reader.id)) == before
    with db.session() as session:
        assert session.get(Reader, reader.id).status == "subscribed"


def test_post_from_another_site_is_refused_even_with_a_token(site, db, reader):
    """A POST whose browser Origin is another site is refused 403; the same POST from this site is saved."""
    url = page_url(site, reader)
    form = {"form_token": form_token(httpx.get(url).text), "topic": ["data"]}
    assert httpx.post(url, data=form, headers={"Origin": "https://evil.example"}).status_code == 403
    assert httpx.post(url, data=form, headers={"Referer": "https://evil.example/x"}).status_code == 403
    assert interests(db, reader.id)["ai"][0] == 1.0
    assert httpx.post(url, data=form, headers={"Origin": site}).status_code == 200
    assert interests(db, reader.id)["ai"][0] is None


def test_names_and_topic_labels_are_escaped(db, home, tmp_path):
    """A reader's name and the taxonomy's labels are shown as text, never as markup."""
    taxonomy = tmp_path / "topics.yaml"
    taxonomy.write_text('topics:\n  ai: "<b>AI</b> & \\"ML\\""\n  data: "Data <img src=x onerror=alert(1)>"\n')
    reader_id = add_reader(db, "mal@example.com")
    with db.session() as session:
        reader = session.get(Reader, reader_id)
        reader.first_name = "<script>alert(1)</script>"
    with running_server(create_app(Settings(), db, taxonomy_path=taxonomy, today=lambda: TODAY)) as base:
        page = httpx.get(page_url(base, reader)).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>AI</b>" not in page and "&lt;b&gt;AI&lt;/b&gt; &amp; &#34;ML&#34;" in page
    assert "<img" not in page


def test_forged_or_wrong_purpose_tokens_get_404(site, reader):
    """An altered preference token, or the reader's unsubscribe token, gets the plain 404 page."""
    genuine = make_token(SECRET, reader.public_id, "p")
    for token in (genuine[:-1] + ("0" if genuine[-1] != "0" else "1"), make_token(SECRET, reader.public_id, "u")):
        assert httpx.get(f"{site}/p/{token}").status_code == 404
        assert httpx.post(f"{site}/p/{token}", data={"topic": ["data"]}).status_code == 404
