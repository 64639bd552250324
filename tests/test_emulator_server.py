"""The emulator over real HTTP on 127.0.0.1, driven by the official `sendgrid` client."""

from __future__ import annotations

import copy
import gzip
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sendgrid
from python_http_client.exceptions import BadRequestsError, HTTPError, PayloadTooLargeError, UnauthorizedError
from sendgrid.helpers.mail import Content, Mail, Personalization, Substitution, To

from pipeline.emulator import SendGridEmulator, running_emulator
from pipeline.emulator.rules import MAX_BODY_BYTES

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sendgrid" / "mail_send_personalized.json"


def personalized() -> dict[str, Any]:
    """A recorded three-reader payload with substitutions, custom_args and unsubscribe headers."""
    return json.loads(FIXTURE.read_text())


def client_for(emulator: SendGridEmulator, api_key: str | None = None) -> sendgrid.SendGridAPIClient:
    """The official client pointed at the emulator, with a timeout (it has none by default)."""
    client = sendgrid.SendGridAPIClient(api_key or emulator.api_key, host=emulator.url)
    client.client.timeout = 10
    return client


def raw_post(emulator: SendGridEmulator, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """POST raw bytes with urllib, returning status, headers and body even for errors."""
    request = urllib.request.Request(emulator.url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_json(emulator: SendGridEmulator, path: str) -> Any:
    """GET an inspection endpoint with the emulator's key and decode its JSON."""
    request = urllib.request.Request(emulator.url + path, headers={"Authorization": f"Bearer {emulator.api_key}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture
def emulator(tmp_path: Path):
    """An emulator with a file store, serving on a free loopback port."""
    with running_emulator(store_path=tmp_path / "emulator.db") as running:
        yield running


def test_accepts_valid_payload_with_message_id(emulator: SendGridEmulator) -> None:
    """A valid request is answered 202 with an empty body and a ~22-character URL-safe X-Message-Id."""
    response = client_for(emulator).client.mail.send.post(request_body=personalized())
    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert len(message_id) == 22 and all(c.isalnum() or c in "-_" for c in message_id)
    assert emulator.url.startswith("http://127.0.0.1:")


def test_each_reader_gets_their_substitutions(emulator: SendGridEmulator) -> None:
    """Each reader's stored copy has their own substitutions applied to subject, text and HTML."""
    response = client_for(emulator).client.mail.send.post(request_body=personalized())
    [grace] = emulator.store.messages_for("Grace@Example.com")
    assert grace.x_message_id == response.headers["X-Message-Id"]
    assert grace.subject == "Grace, your Monday edition"
    assert grace.text.startswith("Hello Grace,") and "https://news.example.com/u/tok-grace" in grace.text
    assert '<a href="https://news.example.com/u/tok-grace">' in grace.html and "-first_name-" not in grace.html
    assert grace.custom_args == {"edition_id": "2026-12-07", "variant_id": "a", "reader_id": "102"}
    assert grace.headers["List-Unsubscribe"] == "<https://news.example.com/u/tok-grace>"
    assert grace.categories == ("edition-2026-12-07", "variant-a")
    assert grace.from_email == "editors@news.example.com" and grace.name == "Grace Hopper"
    assert emulator.store.count_by_recipient() == {"ada@example.com": 1, "grace@example.com": 1, "katherine@example.com": 1}


def test_messages_endpoint_lists_applied_copies(emulator: SendGridEmulator) -> None:
    """GET /_emulator/messages?to=ADDR returns the reader's copies with substitutions applied."""
    client_for(emulator).client.mail.send.post(request_body=personalized())
    [ada] = get_json(emulator, "/_emulator/messages?to=ada%40example.com")
    assert ada["subject"] == "Ada, your Monday edition"
    assert "Hello Ada," in ada["text"] and "tok-ada" in ada["html"]
    assert ada["email"] == "ada@example.com" and ada["custom_args"]["reader_id"] == "101"
    assert get_json(emulator, "/_emulator/messages?to=nobody%40example.com") == []


def test_official_mail_helper_payload_is_accepted(emulator: SendGridEmulator) -> None:
    """A payload built with sendgrid.helpers.mail.Mail is accepted and delivered per personalization."""
    mail = Mail(from_email="news@example.com", subject="Hello -name-")
    mail.add_content(Content("text/plain", "Dear -name-"))
    mail.add_content(Content("text/html", "<p>Dear -name-</p>"))
    for address, name in (("lin@example.com", "Lin"), ("sam@example.com", "Sam")):
        personalization = Personalization()
        personalization.add_to(To(address))
        personalization.add_substitution(Substitution("-name-", name))
        mail.add_personalization(personalization)
    response = client_for(emulator).client.mail.send.post(request_body=mail.get())
    assert response.status_code == 202
    assert [m.html for m in emulator.store.messages_for("sam@example.com")] == ["<p>Dear Sam</p>"]


def test_invalid_payload_gets_sendgrid_errors_and_stores_nothing(emulator: SendGridEmulator) -> None:
    """An invalid request is refused 400 with every error and its field, and nothing is delivered."""
    payload = personalized()
    payload["personalizations"][1]["to"][0]["email"] = "grace.example.com"
    payload["content"].reverse()
    with pytest.raises(BadRequestsError) as refused:
        client_for(emulator).client.mail.send.post(request_body=payload)
    body = json.loads(refused.value.body)
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"personalizations.1.to.0.email", "content.1.type"}
    assert all(set(error) == {"message", "field", "help"} for error in body["errors"])
    assert emulator.store.total() == 0


def test_wrong_key_is_refused_401(emulator: SendGridEmulator) -> None:
    """A request with another key gets 401 and SendGrid's exact error body, and nothing is stored."""
    with pytest.raises(UnauthorizedError) as refused:
        client_for(emulator, api_key="SG.wrong").client.mail.send.post(request_body=personalized())
    assert json.loads(refused.value.body) == {
        "errors": [{"field": None, "message": "The provided authorization grant is invalid, expired, or revoked", "help": None}]
    }
    assert emulator.store.total() == 0


def test_missing_authorization_is_refused_401(emulator: SendGridEmulator) -> None:
    """A request without an Authorization header gets 401 "authorization required"."""
    status, _, body = raw_post(emulator, "/v3/mail/send", json.dumps(personalized()).encode(), {"Content-Type": "application/json"})
    assert status == 401
    assert json.loads(body)["errors"][0]["message"] == "authorization required"


def test_sandbox_mode_answers_200_and_stores_nothing(emulator: SendGridEmulator) -> None:
    """A valid request in sandbox mode is answered 200 and delivers nothing."""
    payload = personalized()
    payload["mail_settings"]["sandbox_mode"]["enable"] = True
    response = client_for(emulator).client.mail.send.post(request_body=payload)
    assert response.status_code == 200
    assert emulator.store.total() == 0
    assert emulator.stats()["sandbox"] == 1


def test_sandbox_mode_still_validates(emulator: SendGridEmulator) -> None:
    """Sandbox mode does not skip validation: an invalid sandboxed request is still 400."""
    payload = personalized()
    payload["mail_settings"]["sandbox_mode"]["enable"] = True
    del payload["from"]
    with pytest.raises(BadRequestsError):
        client_for(emulator).client.mail.send.post(request_body=payload)


def test_non_json_body_is_400(emulator: SendGridEmulator) -> None:
    """A body that is not JSON is refused 400 in SendGrid's error format."""
    headers = {"Authorization": f"Bearer {emulator.api_key}", "Content-Type": "application/json"}
    status, _, body = raw_post(emulator, "/v3/mail/send", b"{not json", headers)
    assert status == 400
    [error] = json.loads(body)["errors"]
    assert error["field"] is None and "not valid JSON" in error["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=utf-8", ""])
def test_a_body_that_is_not_declared_exactly_json_is_415(emulator: SendGridEmulator, content_type: str) -> None:
    """Only exactly application/json is taken (SendGrid answers 415 otherwise, to a charset too on some
    endpoints); the official client sends exactly that, so its requests pass."""
    headers = {"Authorization": f"Bearer {emulator.api_key}"} | ({"Content-Type": content_type} if content_type else {})
    status, _, body = raw_post(emulator, "/v3/mail/send", json.dumps(personalized()).encode(), headers)
    assert status == 415
    assert json.loads(body)["errors"][0]["message"] == "Content-Type should be application/json."
    assert client_for(emulator).client.mail.send.post(request_body=personalized()).status_code == 202


def test_body_over_30_mb_is_413(emulator: SendGridEmulator) -> None:
    """A body over the 30 MB limit is refused 413, and the client still receives the answer."""
    payload = personalized()
    payload["content"][0]["value"] = "x" * MAX_BODY_BYTES
    with pytest.raises(PayloadTooLargeError) as refused:
        client_for(emulator).client.mail.send.post(request_body=payload)
    assert refused.value.status_code == 413
    assert json.loads(refused.value.body)["errors"][0]["message"] == "content too large"
    assert emulator.store.total() == 0


def test_gzip_body_is_accepted(emulator: SendGridEmulator) -> None:
    """A gzip-compressed body (Content-Encoding: gzip, as SendGrid allows) is decompressed and accepted."""
    body = gzip.compress(json.dumps(personalized()).encode())
    headers = {"Authorization": f"Bearer {emulator.api_key}", "Content-Type": "application/json", "Content-Encoding": "gzip"}
    status, answer_headers, _ = raw_post(emulator, "/v3/mail/send", body, headers)
    assert status == 202 and answer_headers["X-Message-Id"]
    assert emulator.store.total() == 3


def test_other_paths_are_404_and_get_on_mail_send_405(emulator: SendGridEmulator) -> None:
    """Unknown paths answer 404 and GET /v3/mail/send answers 405, both in SendGrid's error format."""
    with pytest.raises(HTTPError) as missing:
        client_for(emulator).client.mail.batch.post(request_body={})
    assert missing.value.status_code == 404
    assert json.loads(missing.value.body)["errors"][0]["message"] == "not found"
    with pytest.raises(HTTPError) as wrong_method:
        client_for(emulator).client.mail.send.get()
    assert wrong_method.value.status_code == 405


def test_concurrent_requests_are_all_stored(emulator: SendGridEmulator) -> None:
    """Eight clients sending at once get 202 each and every reader's copy is stored exactly once."""
    failures: list[BaseException] = []

    def send(batch: int) -> None:
        payload = personalized()
        for index, item in enumerate(payload["personalizations"]):
            item["to"][0]["email"] = f"reader{batch}-{index}@example.com"
        try:
            for round_ in range(5):
                payload_copy = copy.deepcopy(payload)
                payload_copy["custom_args"]["round"] = str(round_)
                assert client_for(emulator).client.mail.send.post(request_body=payload_copy).status_code == 202
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=send, args=(batch,)) for batch in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    counts = emulator.store.count_by_recipient()
    assert len(counts) == 24 and set(counts.values()) == {5}
    assert emulator.stats()["accepted"] == 40


def test_stats_and_public_key_endpoints(emulator: SendGridEmulator) -> None:
    """The stats endpoint counts requests, outcomes and recipients; the key endpoint serves the webhook key."""
    client = client_for(emulator)
    client.client.mail.send.post(request_body=personalized())
    with pytest.raises(BadRequestsError):
        client.client.mail.send.post(request_body={})
    stats = get_json(emulator, "/_emulator/stats")
    assert stats["requests"] == 2 and stats["accepted"] == 1 and stats["recipients"] == 3
    assert stats["rejected"] == {"400": 1}
    assert stats["faults"] == {"429": 0, "500": 0, "slow": 0, "drop": 0, "drop-after": 0}
    assert get_json(emulator, "/_emulator/webhook-public-key") == {"public_key": emulator.public_key}


def test_file_store_outlives_the_emulator(tmp_path: Path) -> None:
    """Messages stored in the SQLite file can be read after the emulator stopped."""
    from pipeline.emulator import MessageStore

    path = tmp_path / "kept.db"
    with running_emulator(store_path=path) as running:
        client_for(running).client.mail.send.post(request_body=personalized())
    store = MessageStore(path)
    try:
        assert [m.subject for m in store.messages_for("katherine@example.com")] == ["Katherine, your Monday edition"]
    finally:
        store.close()


def test_payload_observer_sees_every_body_and_its_failure_reaches_the_test(tmp_path: Path) -> None:
    """A payload_observer gets each decoded body; when it raises, the request is refused 400 and the error re-raised on exit."""
    seen: list[dict[str, Any]] = []

    def observe(payload: dict[str, Any]) -> None:
        seen.append(payload)
        if payload.get("subject") == "forbidden":
            raise AssertionError("subject must not be 'forbidden'")

    with pytest.raises(AssertionError, match="forbidden"):
        with running_emulator(payload_observer=observe) as running:
            client = client_for(running)
            assert client.client.mail.send.post(request_body=personalized()).status_code == 202
            refused_payload = personalized()
            refused_payload["subject"] = "forbidden"
            with pytest.raises(BadRequestsError) as refused:
                client.client.mail.send.post(request_body=refused_payload)
            assert "payload_observer" in json.loads(refused.value.body)["errors"][0]["message"]
            assert running.store.total() == 3
    assert [payload["subject"] for payload in seen] == ["Your Monday edition", "forbidden"]
