"""Reading SendGrid Event Webhook JSON: every event type, attribution, and malformed events quarantined."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.engagement import sendgrid_events
from pipeline.engagement.events import EventType
from pipeline.engagement.sendgrid_events import InvalidEventBody, parse_event, parse_events
from pipeline.rendering.links import tag_url

TIMESTAMP = 1796601600  # 2026-12-07 00:00:00 UTC


def sendgrid_event(event: str = "delivered", **fields: object) -> dict:
    """One event as SendGrid posts it, with our custom_args as top-level keys."""
    base: dict = {
        "email": "ann@example.com",
        "timestamp": TIMESTAMP,
        "event": event,
        "sg_event_id": f"sg-{event}-1",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "category": ["edition-2026-12-07", "variant-a"],
        "edition_id": "2026-12-07",
        "reader_id": "102",
        "variant_id": "a1b2c3",
        "holdout": "0",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(("name", "expected"), [
    ("processed", EventType.PROCESSED),
    ("dropped", EventType.DROPPED),
    ("delivered", EventType.DELIVERED),
    ("deferred", EventType.DEFERRED),
    ("open", EventType.OPEN),
    ("click", EventType.CLICK),
    ("spamreport", EventType.SPAM_REPORT),
    ("unsubscribe", EventType.UNSUBSCRIBE),
    ("group_unsubscribe", EventType.GROUP_UNSUBSCRIBE),
    ("group_resubscribe", EventType.GROUP_RESUBSCRIBE),
])
def test_each_sendgrid_event_maps_to_our_type(name, expected):
    """Every SendGrid event name becomes the matching EventType."""
    assert parse_event(sendgrid_event(name)).event_type is expected


@pytest.mark.parametrize(("kind", "expected"), [
    ("bounce", EventType.HARD_BOUNCE),
    ("blocked", EventType.SOFT_BOUNCE),
    (None, EventType.HARD_BOUNCE),
])
def test_bounce_type_decides_hard_or_soft(kind, expected):
    """A bounce of type 'bounce' (or no type) is hard, of type 'blocked' is soft, and its reason is kept."""
    event = parse_event(sendgrid_event("bounce", type=kind, status="5.1.1", reason="550 5.1.1 no such user"))
    assert event.event_type is expected
    assert event.reason == "550 5.1.1 no such user"


def test_machine_open_is_not_a_human_open():
    """An open with sg_machine_open true (Apple Mail Privacy Protection) becomes MACHINE_OPEN."""
    assert parse_event(sendgrid_event("open", sg_machine_open=True)).event_type is EventType.MACHINE_OPEN
    assert parse_event(sendgrid_event("open", sg_machine_open=False)).event_type is EventType.OPEN


def test_custom_args_attribute_the_event():
    """edition_id, reader_id (as an int), variant_id and holdout come from the top-level custom args."""
    event = parse_event(sendgrid_event("delivered", holdout="1"))
    assert (event.edition_id, event.reader_id, event.variant_id, event.holdout) == ("2026-12-07", 102, "a1b2c3", True)
    assert parse_event(sendgrid_event("delivered", holdout="0")).holdout is False
    assert event.occurred_at == dt.datetime(2026, 12, 7, 0, 0, 0)
    assert event.provider_event_id == "sg-delivered-1"
    assert event.raw["category"] == ["edition-2026-12-07", "variant-a"]


def test_event_without_custom_args_has_no_attribution():
    """An event of a message sent outside readerfirst is read, with no reader, edition or variant."""
    event = parse_event(sendgrid_event("delivered", edition_id=None, reader_id=None, variant_id=None, holdout=None))
    assert (event.reader_id, event.edition_id, event.variant_id, event.holdout) == (None, None, None, None)


def test_click_takes_section_and_edition_from_the_tagged_url():
    """A click on a tagged link names the section (rf_s) and edition (rf_e) the link came from."""
    url = tag_url("https://example.com/story?id=7", "2026-11-30", "climate-lead")
    event = parse_event(sendgrid_event("click", url=url, url_offset={"index": 0, "type": "html"}))
    assert (event.edition_id, event.section_id, event.url) == ("2026-11-30", "climate-lead", url)


def test_click_on_untagged_link_keeps_edition_from_custom_args():
    """A click on an untagged link (such as the footer) keeps the message's edition and has no section."""
    event = parse_event(sendgrid_event("click", url="https://example.com/about"))
    assert (event.edition_id, event.section_id) == ("2026-12-07", None)


def test_group_events_carry_their_group():
    """Group unsubscribe and resubscribe events carry the ASM group id as an int."""
    assert parse_event(sendgrid_event("group_unsubscribe", asm_group_id=1201)).asm_group_id == 1201
    assert parse_event(sendgrid_event("group_resubscribe", asm_group_id="1201")).asm_group_id == 1201


def test_address_is_compared_in_lower_case_and_raw_kept_as_sent():
    """The address is lowercased for matching readers while the raw event keeps it as SendGrid sent it."""
    event = parse_event(sendgrid_event(email="Ann@Example.COM"))
    assert event.email == "ann@example.com" and event.raw["email"] == "Ann@Example.COM"


@pytest.mark.parametrize(("change", "reason"), [
    ({"sg_event_id": None}, "missing sg_event_id"),
    ({"email": None}, "missing email"),
    ({"event": None}, "missing event"),
    ({"timestamp": None}, "missing timestamp"),
    ({"event": "teleported"}, "unknown event 'teleported'"),
    ({"timestamp": "yesterday"}, "timestamp='yesterday' is not a whole number"),
    ({"timestamp": 1796601600.5}, "is not a whole number"),
    ({"reader_id": "ann"}, "reader_id='ann' is not an integer"),
    ({"holdout": "maybe"}, "holdout='maybe'"),
    ({"sg_event_id": "x" * 101}, "at most 100"),
    ({"email": {"address": "ann@example.com"}}, "is not a string"),
])
def test_malformed_event_is_quarantined_with_its_reason(change, reason):
    """A malformed event is returned with the reason, and the other events of the batch are read."""
    good = sendgrid_event("delivered", sg_event_id="good-1")
    bad = sendgrid_event("open", sg_event_id="bad-1")
    bad.update(change)
    bad = {k: v for k, v in bad.items() if v is not None}
    events, quarantined = parse_events([good, bad, sendgrid_event("open", sg_event_id="good-2")])
    assert [e.provider_event_id for e in events] == ["good-1", "good-2"]
    [(raw, why)] = quarantined
    assert raw == bad and reason in why


def test_an_element_that_is_not_an_object_is_quarantined():
    """A number or string in the array is quarantined as text with its reason."""
    events, quarantined = parse_events(json.dumps([7, sendgrid_event()]).encode())
    assert len(events) == 1
    assert quarantined == [("7", "an event must be a JSON object, not int")]


def test_raw_body_with_trailing_crlf_is_read():
    """A webhook body as bytes with SendGrid's trailing CRLF is read whole."""
    body = json.dumps([sendgrid_event("processed"), sendgrid_event("delivered")]).encode() + b"\r\n"
    events, quarantined = parse_events(body)
    assert [e.event_type for e in events] == [EventType.PROCESSED, EventType.DELIVERED] and quarantined == []


@pytest.fixture(params=["orjson", "json"])
def decoder(request, monkeypatch):
    """Each JSON decoder the module may use: orjson (installed with Prefect) and the standard library."""
    if request.param == "json":
        monkeypatch.setattr(sendgrid_events, "orjson", None)
    elif sendgrid_events.orjson is None:
        pytest.skip("orjson is not installed")
    return request.param


@pytest.mark.parametrize("body", [b"not json", b'{"event": "open"}', b"[NaN]", b"[1e400]", b'[{"a": "\\ud800"}]',
                                  b"\xff\xfe[]", b""])
def test_body_that_is_not_a_json_array_is_refused_whole(decoder, body):
    """A body that is not JSON, not an array, not UTF-8, or holds what no database stores, raises InvalidEventBody."""
    with pytest.raises(InvalidEventBody):
        parse_events(body)


def test_both_decoders_read_a_batch_alike(decoder):
    """Whichever decoder is used, a batch with escapes and emoji reads the same."""
    body = json.dumps([sendgrid_event("click", url="https://example.com/caf\u00e9?q=\U0001f600")]).encode() + b"\r\n"
    [event], _ = parse_events(body)
    assert event.url == "https://example.com/caf\u00e9?q=\U0001f600"
