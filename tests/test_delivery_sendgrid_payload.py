"""Building Mail Send payloads: one request per batch, within SendGrid's limits and the official spec."""

from __future__ import annotations

import json

import pytest

from pipeline.content.edition import load_edition
from pipeline.delivery.sendgrid_payload import SUBSTITUTIONS_LIMIT, build_payload, html_key, substitutions_size, text_key
from pipeline.delivery.transport import Envelope, OutgoingBatch
from pipeline.rendering.layout import EditionLayout
from pipeline.rendering.templates import TemplateSet
from tests.conftest import EDITION, TEMPLATES
from tests.sendgrid_spec import assert_payload_valid

_LAYOUT = None


def _layout() -> EditionLayout:
    global _LAYOUT
    if _LAYOUT is None:
        _LAYOUT = EditionLayout(load_edition(EDITION), TemplateSet(TEMPLATES))
    return _LAYOUT


def sample_batch(readers: int = 3, first_name: str = "Ann", holdout: bool = False) -> OutgoingBatch:
    """A batch of the sample edition's first five sections for `readers` readers."""
    layout = _layout()
    ids = tuple(s.id for s in layout.edition.sections[:5])
    envelopes = tuple(
        Envelope(reader_id=i + 1, email=f"reader{i}@example.com", name=f"{first_name} {i}", subject=f"Hello {first_name}",
                 values={"first_name": first_name, "last_name": "Reader", "email": f"reader{i}@example.com",
                         "unsubscribe_url": f"https://rf.example.com/u/t{i}", "preferences_url": f"https://rf.example.com/p/t{i}",
                         **{f"why:{sid}": "you follow Climate" for sid in ids}},
                 unsubscribe_url=f"https://rf.example.com/u/t{i}", holdout=holdout)
        for i in range(readers))
    return OutgoingBatch(batch_id="b-1", edition_id="2026-12-07", variant_id="v1", body=layout.variant(ids),
                         envelopes=envelopes, from_email="news@example.com", from_name="The Brief",
                         categories=("2026-12-07",))


def test_payload_is_valid_for_the_spec_and_limits():
    """A built payload passes the official schema (with its known defects corrected) and the limits."""
    payload = build_payload(sample_batch(readers=50))
    assert_payload_valid(payload)
    assert len(payload["personalizations"]) == 50


def test_one_personalization_per_reader_with_attribution():
    """Each reader is one personalization with custom_args mapping every event back, and one-click headers."""
    payload = build_payload(sample_batch(readers=2, holdout=True))
    first = payload["personalizations"][0]
    assert first["to"] == [{"email": "reader0@example.com", "name": "Ann 0"}]
    # What the batch shares is said once at the top; SendGrid merges it into every personalization.
    assert {**payload["custom_args"], **first["custom_args"]} == {"edition_id": "2026-12-07", "reader_id": "1",
                                                                  "variant_id": "v1", "holdout": "1"}
    assert {**payload["headers"], **first["headers"]} == {"List-Unsubscribe": "<https://rf.example.com/u/t0>",
                                                          "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert payload["categories"] == ["2026-12-07"]
    assert "sections" not in payload  # SendGrid removed top-level sections: never used


def test_html_and_text_use_separate_keys_with_their_own_escaping():
    """The HTML part's tags get HTML-escaped values, the text part's tags plain ones."""
    payload = build_payload(sample_batch(readers=1, first_name="Ann & <Bo>"))
    subs = payload["personalizations"][0]["substitutions"]
    assert subs[html_key("first_name")] == "Ann &amp; &lt;Bo&gt;"
    assert subs[text_key("first_name")] == "Ann & <Bo>"
    text, html = payload["content"]
    assert text["type"] == "text/plain" and html["type"] == "text/html"
    assert text_key("first_name") in text["value"] and html_key("first_name") in html["value"]
    assert text_key("first_name") not in html["value"]


def test_values_cannot_contain_a_substitution_tag():
    """A value that looks like a tag is neutralised in both parts, so SendGrid cannot expand it."""
    payload = build_payload(sample_batch(readers=1, first_name="%%rf:unsubscribe_url%%"))
    subs = payload["personalizations"][0]["substitutions"]
    for key, value in subs.items():
        assert "%%" not in value, (key, value)


def test_substitutions_stay_under_the_byte_limit_for_absurd_names():
    """A 200-character name of characters that escape to 5-6 bytes is shortened to fit 10,000 bytes."""
    payload = build_payload(sample_batch(readers=1, first_name="<&\"'>" * 40))
    subs = payload["personalizations"][0]["substitutions"]
    assert substitutions_size(subs) < SUBSTITUTIONS_LIMIT
    assert_payload_valid(payload)


def test_sandbox_and_asm_group():
    """--sandbox sets mail_settings.sandbox_mode and an ASM group is passed through."""
    payload = build_payload(sample_batch(readers=1), sandbox=True, asm_group_id=1201)
    assert payload["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert payload["asm"] == {"group_id": 1201}
    assert_payload_valid(payload)


def test_batches_hold_at_most_a_thousand_readers():
    """A batch of more than 1,000 readers cannot be built (SendGrid's per-request limit)."""
    with pytest.raises(ValueError, match="1 to 1000"):
        sample_batch(readers=1001)
    payload = build_payload(sample_batch(readers=1000))
    assert len(json.dumps(payload)) < 30 * 1024 * 1024
    assert_payload_valid(payload)


def test_values_shared_by_every_reader_are_written_into_the_content_once():
    """A reason all readers of the batch share is in the content, escaped per part; what differs stays substituted."""
    batch = sample_batch(readers=3, first_name="Ann & Bo")
    payload = build_payload(batch)
    text, html = payload["content"]
    assert "you follow Climate" in html["value"] and "you follow Climate" in text["value"]
    assert "Ann &amp; Bo" in html["value"] and "Ann & Bo" in text["value"]  # the same first name for all three
    for person in payload["personalizations"]:
        subs = person["substitutions"]
        assert not any(key.startswith(("%%rf:why:", "%%rft:why:")) for key in subs)
        assert html_key("first_name") not in subs and text_key("first_name") not in subs
        assert {html_key("email"), text_key("email"), html_key("unsubscribe_url")} <= set(subs)
    assert html_key("email") in html["value"] and text_key("email") in text["value"]
    assert_payload_valid(payload)
    # One reader alone keeps every value in substitutions (nothing is shared with anyone).
    single = build_payload(sample_batch(readers=1))["personalizations"][0]["substitutions"]
    assert html_key("first_name") in single


def _with_reply_to(batch: OutgoingBatch, domain: str = "replies.example.com") -> OutgoingBatch:
    """The batch with a distinct reply address per reader on `domain`."""
    import dataclasses

    return dataclasses.replace(batch, envelopes=tuple(
        dataclasses.replace(e, reply_to=f"reply+tok{e.reader_id}abc@{domain}") for e in batch.envelopes))


def test_per_reader_reply_to_is_a_substituted_reply_to_valid_for_the_spec():
    """Per-reader Reply-To goes out as the request's reply_to with a tag each personalization substitutes."""
    from pipeline.delivery.sendgrid_payload import REPLY_TAG
    from pipeline.emulator.store import apply_substitutions

    payload = build_payload(_with_reply_to(sample_batch(readers=3)))
    assert_payload_valid(payload)
    assert payload["reply_to"] == {"email": f"{REPLY_TAG}@replies.example.com"}
    assert [apply_substitutions(payload["reply_to"]["email"], p["substitutions"])
            for p in payload["personalizations"]] == [f"reply+tok{i}abc@replies.example.com" for i in (1, 2, 3)]


def test_a_single_reader_gets_the_reply_address_itself_and_no_domain_means_none():
    """One reader's request names the address as it is; readers without one get no reply_to at all."""
    single = build_payload(_with_reply_to(sample_batch(readers=1)))
    assert single["reply_to"] == {"email": "reply+tok1abc@replies.example.com"}
    assert_payload_valid(single)
    assert "reply_to" not in build_payload(sample_batch(readers=2))


def _event_batch(zones: list[str]) -> OutgoingBatch:
    """A batch with the sample's event section, one reader per zone, with the values a send merges."""
    from pipeline.rendering.event_times import event_times
    from pipeline.rendering.message import merge_values_for

    layout = _layout()
    ids = ("hiring-clinic", "heat-pumps-offices")
    envelopes = []
    for i, zone in enumerate(zones):
        values = merge_values_for(first_name="N" * 200, last_name="L" * 200, email=f"r{i}@example.com",
                                  reasons={sid: "you said you need help with Hiring until 2027-01-15" for sid in ids},
                                  unsubscribe_url=f"https://rf.example.com/u/{'a' * 32}.{'b' * 32}",
                                  preferences_url=f"https://rf.example.com/p/{'a' * 32}.{'b' * 32}",
                                  web_version_url=f"https://rf.example.com/web/2026-12-07~{'a' * 32}.{'b' * 32}",
                                  event_times=event_times(layout.edition, ids, zone))
        envelopes.append(Envelope(reader_id=i + 1, email=f"r{i}@example.com", name="", subject="s", values=values,
                                  unsubscribe_url="https://rf.example.com/u/x", holdout=False))
    return OutgoingBatch(batch_id="b-2", edition_id="2026-12-07", variant_id="v2", body=layout.variant(ids),
                         envelopes=tuple(envelopes), from_email="news@example.com", from_name="The Brief")


def test_event_times_are_per_reader_substitutions_within_the_limit():
    """Readers in different zones each get their own event time as a substitution, well within SendGrid's 10 KB."""
    payload = build_payload(_event_batch(["America/New_York", "Asia/Tokyo", ""]))
    assert_payload_valid(payload)
    times = [p["substitutions"][html_key("when:hiring-clinic")] for p in payload["personalizations"]]
    assert times == ["Thu 10 Dec 2026, 13:00\u00a0EST", "Fri 11 Dec 2026, 03:00\u00a0JST", "Thu 10 Dec 2026, 18:00\u00a0GMT"]
    assert all(substitutions_size(p["substitutions"]) < SUBSTITUTIONS_LIMIT // 2 for p in payload["personalizations"])


def test_readers_sharing_a_zone_share_the_event_time_in_the_content():
    """When every reader of a batch has the same zone, the time is written once into the content, not per reader."""
    payload = build_payload(_event_batch(["Europe/Berlin", "Europe/Berlin"]))
    assert all(html_key("when:hiring-clinic") not in p["substitutions"] for p in payload["personalizations"])
    assert "Thu 10 Dec 2026, 19:00\u00a0CET" in payload["content"][1]["value"]
