"""Our mail-send validator against the official OpenAPI spec and SendGrid's documented limits.

The spec-agreement tests build a JSON Schema from the official tsg_mail_v3.json (READERFIRST_SENDGRID_SPEC; refs
resolved, with the two corrections its README lists) and check that, for every payload whose
(in)validity the schema can express, our verdict is jsonschema's verdict. Payloads that only
SendGrid's limits refuse are listed apart, each with the reason the schema cannot say so.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline.emulator import validate_mail_send
from pipeline.emulator.rules import is_email
from tests.sendgrid_spec import request_schema, resolve_refs, spec_path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sendgrid" / "mail_send_personalized.json"
NOW = int(time.time())

_request_schema = request_schema


@pytest.fixture(scope="module")
def official() -> Draft202012Validator:
    """The corrected official request-body schema, with format checking on (email needs it)."""
    schema = _request_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def minimal(**top: Any) -> dict[str, Any]:
    """The smallest payload SendGrid accepts, with top-level keys added or replaced."""
    payload: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "ada@example.com", "name": "Ada"}]}],
        "from": {"email": "news@example.com", "name": "Readerfirst"},
        "subject": "Your edition",
        "content": [{"type": "text/plain", "value": "Hello"}, {"type": "text/html", "value": "<p>Hello</p>"}],
    }
    payload.update(top)
    return payload


def changed(change: Callable[[dict[str, Any]], None], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of `base` (default: minimal()) with `change` applied."""
    payload = copy.deepcopy(base if base is not None else minimal())
    change(payload)
    return payload


def person(index: int, **extra: Any) -> dict[str, Any]:
    """One personalization for reader `index`."""
    return {"to": [{"email": f"reader{index}@example.com"}], **extra}


@dataclass(frozen=True)
class Case:
    """A payload, whether SendGrid accepts it, and the field an error must name."""

    name: str
    payload: Any
    valid: bool
    field: str | None = None


def _personalized() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


AGREEMENT = [
    # --- valid: both must accept ---
    Case("minimal", minimal(), True),
    Case("personalized fixture", _personalized(), True),
    Case("everything optional set", changed(lambda p: p.update(
        send_at=NOW + 3600, batch_id="batch-1", ip_pool_name="newsletters", template_id="1234",
        headers={"X-Edition": "12"}, reply_to={"email": "letters@example.com"},
        asm={"group_id": 7, "groups_to_display": [7, 8]},
        mail_settings={"sandbox_mode": {"enable": False}, "footer": {"enable": False, "text": "t", "html": "<p>t</p>"}},
        tracking_settings={"ganalytics": {"enable": True, "utm_source": "news"}, "subscription_tracking": {"enable": False}},
    )), True),
    Case("dynamic template, no subject nor content", {
        "personalizations": [{"to": [{"email": "ada@example.com"}], "dynamic_template_data": {"first": "Ada", "n": 3}}],
        "from": {"email": "news@example.com"}, "template_id": "d-0123456789abcdef",
    }, True),
    Case("cc, bcc and per-personalization from and subject", {
        "personalizations": [
            {"to": [{"email": "a@example.com"}], "cc": [{"email": "b@example.com"}], "bcc": [{"email": "c@example.com"}], "subject": "One"},
            {"to": [{"email": "d@example.com"}], "from": {"email": "desk@example.com"}, "subject": "Two", "send_at": NOW},
        ],
        "from": {"email": "news@example.com"},
        "content": [{"type": "text/plain", "value": "Hello"}],
    }, True),
    Case("inline attachment", minimal(attachments=[{"content": "aGVsbG8=", "filename": "logo.png", "type": "image/png", "disposition": "inline", "content_id": "logo"}]), True),
    Case("ten categories, one of 255 characters", minimal(categories=[f"c{i}" for i in range(9)] + ["x" * 255]), True),
    Case("reply_to_list", minimal(reply_to_list=[{"email": "a@example.com"}, {"email": "b@example.com", "name": "B"}]), True),
    Case("1,000 personalizations", minimal(personalizations=[person(i) for i in range(1000)]), True),
    Case("top-level custom_args object of strings (the spec types it string)", minimal(custom_args={"edition": "12"}), True),
    # --- invalid, and the schema can say so ---
    Case("body is an array", [minimal()], False, None),
    Case("missing from", changed(lambda p: p.pop("from")), False, "from"),
    Case("from without email", minimal(**{"from": {"name": "News"}}), False, "from.email"),
    Case("from email without @", minimal(**{"from": {"email": "news.example.com"}}), False, "from.email"),
    Case("recipient email without @", minimal(personalizations=[{"to": [{"email": "ada.example.com"}]}]), False, "personalizations.0.to.0.email"),
    Case("recipient name not a string", minimal(personalizations=[{"to": [{"email": "ada@example.com", "name": 7}]}]), False, "personalizations.0.to.0.name"),
    Case("missing personalizations", changed(lambda p: p.pop("personalizations")), False, "personalizations"),
    Case("personalizations is an object", minimal(personalizations={"to": [{"email": "ada@example.com"}]}), False, "personalizations"),
    Case("personalization without to", minimal(personalizations=[{"subject": "Hi"}]), False, "personalizations.0.to"),
    Case("1,001 personalizations", minimal(personalizations=[person(i) for i in range(1001)]), False, "personalizations"),
    Case("bcc of 1,001 addresses", minimal(personalizations=[person(0, bcc=[{"email": f"b{i}@example.com"} for i in range(1001)])]), False, "personalizations.0.bcc"),
    Case("empty subject", minimal(subject=""), False, "subject"),
    Case("empty content value", minimal(content=[{"type": "text/plain", "value": ""}]), False, "content.0.value"),
    Case("content block without type", minimal(content=[{"value": "Hello"}]), False, "content.0.type"),
    Case("substitution value not a string", minimal(personalizations=[person(0, substitutions={"-n-": 3})]), False, "personalizations.0.substitutions.-n-"),
    Case("top-level custom_args value not a string", minimal(custom_args={"edition": 12}), False, "custom_args.edition"),
    Case("eleven categories", minimal(categories=[f"c{i}" for i in range(11)]), False, "categories"),
    Case("duplicate categories", minimal(categories=["news", "news"]), False, "categories"),
    Case("category of 256 characters", minimal(categories=["x" * 256]), False, "categories.0"),
    Case("send_at as a string", minimal(send_at=str(NOW)), False, "send_at"),
    Case("personalization send_at not whole", minimal(personalizations=[person(0, send_at=NOW + 0.5)]), False, "personalizations.0.send_at"),
    Case("attachment without filename", minimal(attachments=[{"content": "aGVsbG8="}]), False, "attachments.0.filename"),
    Case("attachment disposition unknown", minimal(attachments=[{"content": "aGVsbG8=", "filename": "a.txt", "disposition": "bogus"}]), False, "attachments.0.disposition"),
    Case("asm without group_id", minimal(asm={"groups_to_display": [1]}), False, "asm.group_id"),
    Case("asm showing 26 groups", minimal(asm={"group_id": 1, "groups_to_display": list(range(26))}), False, "asm.groups_to_display"),
    Case("ip_pool_name of one character", minimal(ip_pool_name="x"), False, "ip_pool_name"),
    Case("sandbox enable not boolean", minimal(mail_settings={"sandbox_mode": {"enable": "yes"}}), False, "mail_settings.sandbox_mode.enable"),
    Case("click tracking enable not boolean", minimal(tracking_settings={"click_tracking": {"enable": 1}}), False, "tracking_settings.click_tracking.enable"),
    Case("headers not an object", minimal(headers="X-Edition: 12"), False, "headers"),
    Case("reply_to_list repeats an entry", minimal(reply_to_list=[{"email": "a@example.com"}, {"email": "a@example.com"}]), False, "reply_to_list"),
]

# Refused by SendGrid (and by us) although the official schema accepts them: the limits the
# README lists under "Limits the spec does not encode", each with why the schema cannot say it.
LIMITS_ONLY = [
    # The schema sets maxItems on personalizations but no minItems.
    Case("no personalization", minimal(personalizations=[]), False, "personalizations"),
    # `to` is required but may be empty in the schema; SendGrid needs one address.
    Case("empty to", minimal(personalizations=[{"to": []}]), False, "personalizations.0.to"),
    # Content items are typed one by one; their order is beyond the schema.
    Case("text/html before text/plain", minimal(content=[{"type": "text/html", "value": "<p>Hi</p>"}, {"type": "text/plain", "value": "Hi"}]), False, "content.1.type"),
    Case("text/plain twice", minimal(content=[{"type": "text/plain", "value": "a"}, {"type": "text/plain", "value": "b"}]), False, "content.1.type"),
    # content and subject are optional in the schema; SendGrid needs them unless a template gives them.
    Case("no content and no template", changed(lambda p: p.pop("content")), False, "content"),
    Case("no subject anywhere and no template", changed(lambda p: p.pop("subject")), False, "subject"),
    # A request-wide count across personalizations and lists: no keyword spans arrays like that.
    Case("1,001 recipients over two personalizations", minimal(personalizations=[
        {"to": [{"email": f"a{i}@example.com"} for i in range(600)]},
        {"to": [{"email": f"b{i}@example.com"} for i in range(401)]},
    ]), False, "personalizations"),
    # uniqueItems compares whole objects, and never across personalizations or case.
    Case("same reader in two personalizations", minimal(personalizations=[person(1), {"to": [{"email": "READER1@example.com"}]}]), False, "personalizations.1.to.0.email"),
    Case("same reader in to and bcc", minimal(personalizations=[person(1, bcc=[{"email": "reader1@example.com"}])]), False, "personalizations.0"),
    # Byte sizes are not countable in JSON Schema (the spec's maxProperties: 10000 miscounts keys).
    Case("substitutions of 10,000 bytes", minimal(personalizations=[person(0, substitutions={"-bio-": "x" * 9995})]), False, "personalizations.0.substitutions"),
    Case("custom_args of 10,000 bytes", minimal(custom_args={"blob": "x" * 9996}), False, "custom_args"),
    # The per-personalization custom_args is a bare object in the schema.
    Case("personalization custom_args value not a string", minimal(personalizations=[person(0, custom_args={"reader_id": 101})]), False, "personalizations.0.custom_args.reader_id"),
    # maxLength counts characters; "ASCII only" is not in the schema.
    Case("category with non-ASCII text", minimal(categories=["édition"]), False, "categories.0"),
    # A time window relative to now cannot be a schema keyword.
    Case("send_at 73 hours ahead", minimal(send_at=NOW + 73 * 3600), False, "send_at"),
    # headers is a bare object in the schema; reserved names and value types are prose only.
    Case("reserved header Reply-To", minimal(headers={"Reply-To": "x@example.com"}), False, "headers.Reply-To"),
    Case("reserved header in another case", minimal(personalizations=[person(0, headers={"X-SG-ID": "1"})]), False, "personalizations.0.headers.X-SG-ID"),
    Case("header value not a string", minimal(headers={"X-Edition": 12}), False, "headers.X-Edition"),
    # sections is simply absent from the schema, and unknown keys are allowed.
    Case("removed sections feature", minimal(sections={"-footer-": "Bye"}), False, "sections"),
    # jsonschema's "email" format only looks for an @.
    Case("address with nothing after @", minimal(personalizations=[{"to": [{"email": "ada@"}]}]), False, "personalizations.0.to.0.email"),
    # "Either reply_to or reply_to_list, not both" is prose in the spec.
    Case("reply_to and reply_to_list together", minimal(reply_to={"email": "a@example.com"}, reply_to_list=[{"email": "b@example.com"}]), False, "reply_to_list"),
    # "Base64 encoded" is prose in the spec.
    Case("attachment content not base64", minimal(attachments=[{"content": "not base64!", "filename": "a.txt"}]), False, "attachments.0.content"),
]


def _fields(payload: Any) -> list[str | None]:
    return [problem.field for problem in validate_mail_send(payload, now=NOW)]


def test_tables_are_large_enough() -> None:
    """The tables hold at least ten valid, twenty schema-invalid and twenty limit-only payloads."""
    assert sum(case.valid for case in AGREEMENT) >= 10
    assert sum(not case.valid for case in AGREEMENT) >= 20
    assert len(LIMITS_ONLY) >= 20


@pytest.mark.parametrize("case", AGREEMENT, ids=[case.name for case in AGREEMENT])
def test_verdict_agrees_with_official_schema(case: Case, official: Draft202012Validator) -> None:
    """For payloads the schema can judge, our verdict is the official schema's verdict."""
    schema_valid = official.is_valid(case.payload)
    ours = _fields(case.payload)
    assert schema_valid is case.valid, f"the corrected schema says {schema_valid}: {[e.message for e in official.iter_errors(case.payload)]}"
    assert (not ours) is schema_valid, ours
    if not case.valid:
        assert case.field in ours


@pytest.mark.parametrize("case", LIMITS_ONLY, ids=[case.name for case in LIMITS_ONLY])
def test_limits_beyond_the_schema(case: Case, official: Draft202012Validator) -> None:
    """Payloads the schema accepts but SendGrid's documented limits refuse are refused by us, on the right field."""
    assert official.is_valid(case.payload), list(official.iter_errors(case.payload))
    assert case.field in _fields(case.payload)


@pytest.mark.parametrize("name", ["MailSendNoTemplate", "MailSendDynamicTemplate"])
def test_spec_examples_are_accepted(name: str, official: Draft202012Validator) -> None:
    """The request examples shipped in the official spec pass both the schema and our validator."""
    spec = json.loads(spec_path().read_text())
    example = resolve_refs(spec["components"]["requestBodies"]["PostMailSend"], spec)["content"]["application/json"]["examples"][name]["value"]
    assert official.is_valid(example)
    assert validate_mail_send(example, now=NOW) == []


def test_uncorrected_spec_refuses_real_custom_args() -> None:
    """The README's defect is real: the spec as published refuses top-level custom_args as SendGrid takes them."""
    raw = Draft202012Validator(_request_schema(corrected=False), format_checker=Draft202012Validator.FORMAT_CHECKER)
    payload = minimal(custom_args={"edition": "12"})
    assert not raw.is_valid(payload)
    assert validate_mail_send(payload, now=NOW) == []


def test_every_problem_is_reported_in_sendgrids_shape() -> None:
    """A payload with several faults gets one SendGrid-style error per fault, each with message, field and help."""
    payload = minimal(personalizations=[{"to": [{"email": "bad"}]}], categories=["a", "a"])
    del payload["from"]
    errors = [problem.as_json() for problem in validate_mail_send(payload, now=NOW)]
    assert {error["field"] for error in errors} == {"personalizations.0.to.0.email", "from", "categories"}
    for error in errors:
        assert set(error) == {"message", "field", "help"}
        assert isinstance(error["message"], str) and error["message"]
        assert error["help"] and error["help"].startswith("http")


def test_send_at_window_uses_the_given_clock() -> None:
    """send_at is judged against `now`: 71 hours ahead passes, 73 hours ahead fails."""
    assert validate_mail_send(minimal(send_at=NOW + 71 * 3600), now=NOW) == []
    assert _fields(minimal(send_at=NOW + 73 * 3600)) == ["send_at"]


def test_list_unsubscribe_headers_are_allowed() -> None:
    """List-Unsubscribe and List-Unsubscribe-Post pass at both levels, as the README allows."""
    headers = {"List-Unsubscribe": "<https://x.example/u/t>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert validate_mail_send(minimal(headers=headers, personalizations=[person(0, headers=headers)]), now=NOW) == []


@pytest.mark.parametrize("address", ["ada@example.com", "a.b+tag@mail.example.co.uk", "o'neil@example.ie", "x@xn--p1ai.xn--p1ai"])
def test_plausible_addresses_pass(address: str) -> None:
    """Ordinary, tagged, apostrophe and punycode addresses are valid."""
    assert is_email(address)


@pytest.mark.parametrize("address", ["ada", "ada@", "@example.com", "ada@example", "a..b@example.com", ".a@example.com", "a b@example.com", "ada@-example.com"])
def test_malformed_addresses_fail(address: str) -> None:
    """Addresses missing a part, with double dots, spaces or bad host labels are invalid."""
    assert not is_email(address)


@pytest.mark.parametrize("address", ["jürgen@example.com", "ada@bücher.example", "ada@例え.jp", "ада@example.com"])
def test_non_ascii_addresses_are_refused_naming_the_personalization(address: str) -> None:
    """A non-ASCII local part or a raw Unicode domain is refused as SendGrid does, on that personalization's field."""
    payload = minimal(personalizations=[person(0), person(1), person(2), {"to": [{"email": address}]}])
    problems = validate_mail_send(payload, now=NOW)
    assert [(p.field, p.message) for p in problems] == [("personalizations.3.to.0.email", "Does not contain a valid address.")]


def test_idna_domain_is_accepted() -> None:
    """The IDNA (punycode) form of an internationalised domain is accepted, as SendGrid accepts it."""
    payload = minimal(personalizations=[{"to": [{"email": "ada@xn--bcher-kva.example"}]}])
    assert validate_mail_send(payload, now=NOW) == []
