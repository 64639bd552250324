"""Reading SendGrid Event Webhook JSON: every event type, attribution, and malformed events quarantined."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline.engagement import event_array, sendgrid_events
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
        monkeypatch.setattr(event_array, "orjson", None)
    elif sendgrid_events.orjson is None:
        pytest.skip("orjson is not installed")
    return request.param


@pytest.mark.parametrize("body", [b"not json", b'{"event": "open"}', b"\xff\xfe[]", b"", b"[{}", b'[{"a": "b}]',
                                  b"[{]}", b"[{}, , {}]", b"[{}] trailing"])
def test_body_that_is_not_a_json_array_is_refused_whole(decoder, body):
    """A body that is not JSON, not an array, or whose array structure is broken raises InvalidEventBody."""
    with pytest.raises(InvalidEventBody):
        parse_events(body)


@pytest.mark.parametrize("element", [b"NaN", b"-Infinity", b"1e400", b'{"a": "\\ud800"}', b"9" * 5000,
                                     b'{"timestamp": ' + b"9" * 5000 + b"}", b"[" * 3000 + b"]" * 3000,
                                     b'{"email": "\xff\xfe"}', b"{oops}", b'{"a": 1,}'])
def test_an_element_no_database_can_hold_is_quarantined_alone(decoder, element):
    """An element that is not JSON a database can hold is quarantined as its text; the events around it are read."""
    good = [json.dumps(sendgrid_event("delivered", sg_event_id=f"good-{i}")).encode() for i in range(2)]
    body = b"[" + b", ".join([good[0], element, good[1]]) + b"]\r\n"
    events, quarantined = parse_events(body)
    assert [e.provider_event_id for e in events] == ["good-0", "good-1"]
    [(raw, reason)] = quarantined
    assert isinstance(raw, str) and reason.startswith("not JSON a database can hold")
    assert raw.encode("utf-8", "surrogateescape") == element


@pytest.mark.parametrize(("change", "reason"), [
    ({"timestamp": "9" * 5000}, "timestamp='99999"),
    ({"reader_id": "9" * 5000}, "out of range"),
    ({"asm_group_id": "9" * 5000, "event": "group_unsubscribe"}, None),
    ({"timestamp": -1}, "out of range"),
    ({"timestamp": 10**20}, "out of range"),
    ({"timestamp": True}, "not a whole number"),
    ({"timestamp": [1796601600]}, "not a whole number"),
    ({"reader_id": -5}, "out of range"),
    ({"sg_event_id": 10**30}, "more than 18 digits"),
    ({"email": ["ann@example.com"]}, "is not a string"),
    ({"email": 1.5}, "is not a string"),
    ({"holdout": {"x": 1}}, "neither"),
    ({"event": ["open"]}, "unknown event"),
    ({"event": "bounce", "type": 7}, "bounce type=7"),
    ({"edition_id": "x" * 10_000}, "at most 100"),
    ({"variant_id": "a\x00b"}, "NUL"),
    ({"nested": 10**30}, "no database column can store"),
])
def test_hostile_field_values_are_quarantined_or_read_never_raised(change, reason):
    """Huge numbers, wrong types and out-of-range values in any field quarantine that event alone with its reason."""
    bad = {**sendgrid_event("open", sg_event_id="bad-1"), **change}
    events, quarantined = parse_events([sendgrid_event("delivered", sg_event_id="good-1"), bad])
    if reason is None:  # a value we do not need: the event is read, the value left in raw
        assert [e.provider_event_id for e in events] == ["good-1", "bad-1"] and not quarantined
        return
    assert [e.provider_event_id for e in events] == ["good-1"]
    [(_, why)] = quarantined
    assert reason in why and len(why) < 400


@pytest.mark.parametrize("url", ["http://[::1", "https://[example.com/a?rf_s=x", "http://]/?rf_e=1"])
def test_click_on_a_url_urllib_cannot_split_is_kept_without_a_section(url):
    """A click whose url urllib cannot split is still the reader's click: stored with the message's edition, no section."""
    event = parse_event(sendgrid_event("click", url=url))
    assert (event.event_type, event.edition_id, event.section_id, event.url) == (EventType.CLICK, "2026-12-07", None, url)


def test_an_unexpected_error_reading_one_event_quarantines_it_with_its_class(monkeypatch):
    """Whatever reading one event raises, that event is quarantined naming the error class, and the batch goes on."""
    def broken(_url: str) -> tuple[str, str]:
        raise ZeroDivisionError("a bug in a helper")

    monkeypatch.setattr(sendgrid_events, "read_tag", broken)
    events, quarantined = parse_events([sendgrid_event("click", sg_event_id="c", url="https://x.example/"),
                                        sendgrid_event("delivered", sg_event_id="d")])
    assert [e.provider_event_id for e in events] == ["d"]
    assert quarantined[0][1] == "unreadable event (ZeroDivisionError: a bug in a helper)"


def test_both_decoders_read_a_batch_alike(decoder):
    """Whichever decoder is used, a batch with escapes and emoji reads the same."""
    body = json.dumps([sendgrid_event("click", url="https://example.com/caf\u00e9?q=\U0001f600")]).encode() + b"\r\n"
    [event], _ = parse_events(body)
    assert event.url == "https://example.com/caf\u00e9?q=\U0001f600"
