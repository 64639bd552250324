"""The unlucky operator: real mail never goes out without the publisher's name and postal address in its footer."""

from __future__ import annotations

import pytest

from pipeline.content.edition import load_edition
from pipeline.errors import ConfigurationError
from pipeline.flows.runtime import make_transport
from pipeline.rendering.identity import SAMPLE_POSTAL_ADDRESS
from pipeline.rendering.layout import EditionLayout
from pipeline.rendering.message import merge_values_for, personalise
from pipeline.rendering.templates import TemplateSet
from pipeline.settings import Settings
from tests.conftest import EDITION, TEMPLATES

KEY = "SG.test-key"
PUBLIC = "https://news.example.org"


@pytest.mark.parametrize("missing,present", [
    ("READERFIRST_ORGANIZATION", {"READERFIRST_POSTAL_ADDRESS": "1 Quay St, Leeds"}),
    ("READERFIRST_POSTAL_ADDRESS", {"READERFIRST_ORGANIZATION": "Brief Media Ltd"}),
    ("READERFIRST_POSTAL_ADDRESS", {"READERFIRST_ORGANIZATION": "Brief Media Ltd", "READERFIRST_POSTAL_ADDRESS": "  \t"}),
])
def test_real_sendgrid_send_refuses_without_sender_identity(home, missing, present):
    """Through SendGrid beyond loopback, a missing or blank organisation or postal address stops the send in one line naming it."""
    settings = Settings(SENDGRID_API_KEY=KEY, READERFIRST_PUBLIC_URL=PUBLIC, **present)
    with pytest.raises(ConfigurationError) as refused:
        make_transport(settings)
    message = str(refused.value)
    assert message.startswith(f"{missing} is not set") and "\n" not in message


@pytest.mark.parametrize("api_host", ["http://127.0.0.1:3030", "http://localhost:3030"])
def test_emulator_and_outbox_send_with_the_sample_identity(home, api_host):
    """The emulator and the outbox need no identity: the footer shows a sample value that names the setting."""
    settings = Settings(SENDGRID_API_KEY=KEY, SENDGRID_API_HOST=api_host)
    assert make_transport(settings).name == "sendgrid"
    assert make_transport(Settings()).name == "outbox"
    assert "READERFIRST_POSTAL_ADDRESS" in settings.sender_identity().postal_address


def test_hostile_identity_is_text_in_the_footer():
    """An organisation or address holding markup is shown as text, never as HTML or template code."""
    settings = Settings(READERFIRST_ORGANIZATION="<script>alert(1)</script> & Co",
                        READERFIRST_POSTAL_ADDRESS="{{ 7*7 }} Main St <b>x</b>", READERFIRST_NEWSLETTER_NAME="The <i>Brief</i>")
    layout = EditionLayout(load_edition(EDITION), TemplateSet(TEMPLATES), identity=settings.sender_identity())
    ids = (layout.edition.sections[0].id,)
    values = merge_values_for(first_name="Ann", last_name="", email="ann@example.com", reasons={ids[0]: "r"},
                              unsubscribe_url="https://x.example/u", preferences_url="https://x.example/p",
                              web_version_url="https://x.example/web/t")
    message = personalise(layout.variant(ids), values, "s")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co, {{ 7*7 }} Main St &lt;b&gt;x&lt;/b&gt;" in message.html
    assert "<script>" not in message.html and "The &lt;i&gt;Brief&lt;/i&gt;" in message.html
    assert "<script>alert(1)</script> & Co, {{ 7*7 }} Main St <b>x</b>" in message.text
    assert SAMPLE_POSTAL_ADDRESS not in message.html
