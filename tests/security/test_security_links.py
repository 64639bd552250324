"""Links in readers' mail: never a loopback or plain-http unsubscribe address in real mail, never a redirect we did not mean."""

from __future__ import annotations

import httpx
import pytest

from pipeline.errors import ConfigurationError
from pipeline.flows.runtime import make_transport
from pipeline.settings import Settings, is_loopback_url
from pipeline.web.app import create_app, running_server

KEY = "SG.test-key"


def _settings(public_url: str, api_host: str = "https://api.sendgrid.com") -> Settings:
    return Settings(SENDGRID_API_KEY=KEY, SENDGRID_API_HOST=api_host, READERFIRST_PUBLIC_URL=public_url)


@pytest.mark.parametrize("public_url", [
    "http://127.0.0.1:8025", "http://news.example.org", "https://127.0.0.1", "https://localhost:8025",
    "https://[::1]:8025", "https://app.localhost", "ftp://news.example.org", "https://", "news.example.org", "",
])
def test_real_sendgrid_send_refuses_links_readers_cannot_use(home, public_url):
    """With a SendGrid host beyond loopback, a non-https or loopback public URL stops the send, naming the variable."""
    with pytest.raises(ConfigurationError) as refused:
        make_transport(_settings(public_url))
    assert str(refused.value).startswith(f"READERFIRST_PUBLIC_URL={public_url!r}")


def test_real_sendgrid_send_takes_a_public_https_url(home):
    """A public https address is accepted (with the footer's sender identity set)."""
    settings = Settings(SENDGRID_API_KEY=KEY, READERFIRST_PUBLIC_URL="https://news.example.org",
                        READERFIRST_ORGANIZATION="Brief Media Ltd", READERFIRST_POSTAL_ADDRESS="1 Quay St, Leeds LS1 4AB")
    assert make_transport(settings).name == "sendgrid"


@pytest.mark.parametrize("api_host", ["http://127.0.0.1:3030", "http://localhost:3030", "http://[::1]:3030"])
def test_loopback_emulator_accepts_the_default_public_url(home, api_host):
    """Against a SendGrid-compatible server on this machine (tests, the demo, staging) the default URL stays usable."""
    assert make_transport(_settings("http://127.0.0.1:8025", api_host)).name == "sendgrid"


@pytest.mark.parametrize("url,loopback", [
    ("http://127.0.0.1:1", True), ("http://127.9.9.9", True), ("http://[::1]/", True), ("http://LOCALHOST", True),
    ("https://api.sendgrid.com", False), ("http://10.0.0.1", False), ("http://127.0.0.1.evil.example", False),
    ("http://localhost.evil.example", False), ("not a url", False),
])
def test_loopback_detection(url, loopback):
    """Only hosts that are this machine count as loopback, not names that merely start like one."""
    assert is_loopback_url(url) is loopback


def test_trailing_slash_never_redirects_to_the_host_header(db):
    """A request with a trailing slash and a forged Host is answered 404, never a redirect to that host."""
    with running_server(create_app(Settings(), db)) as base:
        for path in ("/healthz/", "/u/abc.def/", "/p/abc.def/", "/webhooks/sendgrid/"):
            answer = httpx.get(base + path, headers={"Host": "evil.example"}, follow_redirects=False)
            assert answer.status_code in (404, 405)
            assert "location" not in answer.headers
