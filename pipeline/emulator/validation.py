"""Our own validator of `POST /v3/mail/send` bodies: the official schema's rules plus SendGrid's limits.

The emulator must refuse what SendGrid refuses, with SendGrid's error format, so that a payload
our pipeline builds is known good before any real key is used. The rules come from two places:
the official OpenAPI description (corrected as ../shared/sendgrid/README.md says) and the limits
SendGrid documents but the schema does not encode (1,000 recipients, unique addresses, byte
sizes, reserved headers, content order, 72 hours ahead...). Every problem is reported, not just
the first, each with a SendGrid-style `field` path such as `personalizations.0.to.0.email`.

Hand-written rather than a generic schema engine because a 1,000-personalization request must
be checked in a few milliseconds, and because the cross-field limits need code anyway.
"""

from __future__ import annotations

import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.emulator.rules import (
    ErrorWording,
    FORBIDDEN_HEADERS,
    MAIL_SETTINGS,
    MAX_ARGS_BYTES,
    MAX_CATEGORIES,
    MAX_CATEGORY_LENGTH,
    MAX_PERSONALIZATIONS,
    MAX_RECIPIENTS,
    MAX_SCHEDULE_SECONDS,
    MAX_SUBSTITUTION_BYTES,
    TRACKING_SETTINGS,
    help_url,
    is_email,
    json_type,
)

__all__ = ["MailSendProblem", "validate_mail_send"]

_MISSING = object()
@dataclass(frozen=True)
class MailSendProblem:
    """One reason SendGrid would refuse a mail-send body, in SendGrid's error shape."""

    message: str
    field: str | None
    help: str | None = None

    def as_json(self) -> dict[str, str | None]:
        """The problem as one entry of SendGrid's `{"errors": [...]}` list."""
        return {"message": self.message, "field": self.field, "help": self.help}


class _Problems:
    """Collects problems while the checks walk the payload."""

    def __init__(self) -> None:
        self.found: list[MailSendProblem] = []

    def add(self, field: str | None, message: str) -> None:
        """Record one problem on `field`, with the documentation link for it."""
        self.found.append(MailSendProblem(message, field, help_url(field)))

    def typed(self, value: object, expected: str, field: str) -> bool:
        """True when `value` has JSON type `expected`; records SendGrid's type error otherwise."""
        given = json_type(value)
        if given == expected:
            return True
        self.add(field, f"Invalid type. Expected: {expected}, given: {given}.")
        return False

    def text(self, value: object, field: str, *, min_length: int = 0, max_length: int | None = None) -> bool:
        """A string within the given length (in characters, as JSON Schema counts)."""
        if not self.typed(value, "string", field):
            return False
        assert isinstance(value, str)
        if len(value) < min_length:
            self.add(field, f"The {field} value must be a string at least {min_length} character{'s' * (min_length > 1)} in length.")
            return False
        if max_length is not None and len(value) > max_length:
            self.add(field, f"The {field} value may not be longer than {max_length} characters.")
            return False
        return True


def validate_mail_send(payload: object, *, now: float | None = None) -> list[MailSendProblem]:
    """Every problem SendGrid would report for this mail-send body; an empty list means accepted.

    `now` (Unix seconds) anchors the 72-hour `send_at` limit; it defaults to the clock.
    """
    problems = _Problems()
    if not isinstance(payload, dict):
        problems.add(None, f"Invalid type. Expected: object, given: {json_type(payload)}.")
        return problems.found
    now = time.time() if now is None else now
    top_args = payload.get("custom_args")
    _check_personalizations(problems, payload.get("personalizations", _MISSING), top_args, now)
    _check_address(problems, payload.get("from", _MISSING), "from", required=True)
    if "reply_to" in payload:
        _check_address(problems, payload["reply_to"], "reply_to")
    _check_reply_to_list(problems, payload)
    _check_subject_and_content(problems, payload)
    _check_attachments(problems, payload.get("attachments", _MISSING))
    for name in ("template_id", "batch_id"):
        if name in payload:
            problems.typed(payload[name], "string", name)
    if "ip_pool_name" in payload:
        problems.text(payload["ip_pool_name"], "ip_pool_name", min_length=2, max_length=64)
    _check_headers(problems, payload.get("headers", _MISSING), "headers")
    _check_categories(problems, payload.get("categories", _MISSING))
    if "custom_args" in payload:
        _check_custom_args(problems, top_args, "custom_args", strings_only=True)
    _check_send_at(problems, payload.get("send_at", _MISSING), "send_at", now)
    _check_asm(problems, payload.get("asm", _MISSING))
    _check_settings(problems, payload.get("mail_settings", _MISSING), "mail_settings", MAIL_SETTINGS)
    _check_settings(problems, payload.get("tracking_settings", _MISSING), "tracking_settings", TRACKING_SETTINGS)
    if "sections" in payload:
        # SendGrid removed sections in 2020: a payload using them would silently lose text.
        problems.add("sections", ErrorWording.SECTIONS_REMOVED)
    return problems.found


def _check_address(problems: _Problems, value: object, field: str, *, required: bool = False) -> str | None:
    """Check one `{"email", "name"}` object; returns the lower-cased address when it is valid."""
    if value is _MISSING:
        if required:
            problems.add(field, ErrorWording.FROM_REQUIRED.format(field=field))
        return None
    if not problems.typed(value, "object", field):
        return None
    assert isinstance(value, dict)
    if "name" in value:
        problems.typed(value["name"], "string", f"{field}.name")
    email = value.get("email", _MISSING)
    if email is _MISSING:
        problems.add(f"{field}.email", ErrorWording.EMAIL_REQUIRED.format(field=field))
        return None
    if not problems.typed(email, "string", f"{field}.email"):
        return None
    assert isinstance(email, str)
    if not is_email(email):
        problems.add(f"{field}.email", "Does not contain a valid address.")
        return None
    return email.lower()


def _check_personalizations(problems: _Problems, value: object, top_args: object, now: float) -> None:
    field = "personalizations"
    if value is _MISSING:
        problems.add(field, "The personalizations field is required and must have at least one personalization.")
        return
    if not problems.typed(value, "array", field):
        return
    assert isinstance(value, list)
    if not value:
        problems.add(field, "You must have at least one personalization.")
    elif len(value) > MAX_PERSONALIZATIONS:
        problems.add(field, ErrorWording.TOO_MANY_PERSONALIZATIONS.format(limit=MAX_PERSONALIZATIONS, count=len(value)))
    # lower-cased address -> the personalization that first named it: SendGrid refuses a
    # repeat, which would otherwise deliver the same message twice to one reader.
    seen: dict[str, int] = {}
    recipients = 0
    for index, item in enumerate(value):
        base = f"{field}.{index}"
        if not problems.typed(item, "object", base):
            continue
        assert isinstance(item, dict)
        recipients += _check_recipients(problems, item, base, index, seen)
        if "from" in item:
            _check_address(problems, item["from"], f"{base}.from")
        if "subject" in item:
            problems.text(item["subject"], f"{base}.subject", min_length=1)
        _check_headers(problems, item.get("headers", _MISSING), f"{base}.headers")
        _check_substitutions(problems, item.get("substitutions", _MISSING), f"{base}.substitutions")
        if "dynamic_template_data" in item:
            problems.typed(item["dynamic_template_data"], "object", f"{base}.dynamic_template_data")
        if "custom_args" in item:
            args = item["custom_args"]
            if problems.typed(args, "object", f"{base}.custom_args"):
                # The size limit is on what travels with the message: the request's own args
                # merged with this personalization's.
                merged = {**top_args, **args} if isinstance(top_args, dict) else args
                _check_custom_args(problems, merged, f"{base}.custom_args", strings_only=False, own=args)
        _check_send_at(problems, item.get("send_at", _MISSING), f"{base}.send_at", now)
    if recipients > MAX_RECIPIENTS:
        problems.add(field, f"There is a limit of {MAX_RECIPIENTS} total recipients (to + cc + bcc) per request; it has {recipients}.")


def _check_recipients(problems: _Problems, item: dict[str, object], base: str, index: int, seen: dict[str, int]) -> int:
    """Check to, cc and bcc of one personalization; returns how many recipients it names."""
    count = 0
    for kind in ("to", "cc", "bcc"):
        listed = item.get(kind, _MISSING)
        field = f"{base}.{kind}"
        if listed is _MISSING:
            if kind == "to":
                problems.add(field, ErrorWording.TO_REQUIRED)
            continue
        if not problems.typed(listed, "array", field):
            continue
        assert isinstance(listed, list)
        if kind == "to" and not listed:
            problems.add(field, ErrorWording.TO_REQUIRED)
        elif kind != "to" and len(listed) > MAX_RECIPIENTS:
            problems.add(field, f"The {kind} array may not hold more than {MAX_RECIPIENTS} addresses.")
        count += len(listed)
        for position, entry in enumerate(listed):
            address = _check_address(problems, entry, f"{field}.{position}")
            if address is None:
                continue
            first = seen.get(address)
            if first is None:
                seen[address] = index
                continue
            if first == index:
                problems.add(base, ErrorWording.DUPLICATE_IN_PERSONALIZATION.format(address=entry["email"], field=field))
            else:
                problems.add(f"{field}.{position}.email", ErrorWording.DUPLICATE_IN_REQUEST.format(address=entry["email"], first=first))
    return count


def _check_subject_and_content(problems: _Problems, payload: dict[str, object]) -> None:
    templated = isinstance(payload.get("template_id"), str)
    if "subject" in payload:
        problems.text(payload["subject"], "subject", min_length=1)
    else:
        people = payload.get("personalizations")
        every_has_subject = isinstance(people, list) and bool(people) and all(isinstance(p, dict) and "subject" in p for p in people)
        if not templated and not every_has_subject:
            problems.add("subject", ErrorWording.SUBJECT_REQUIRED)
    content = payload.get("content", _MISSING)
    if content is _MISSING or content == []:
        if not templated:
            problems.add("content", ErrorWording.CONTENT_REQUIRED)
        return
    if not problems.typed(content, "array", "content"):
        return
    assert isinstance(content, list)
    kinds: list[str | None] = []
    for index, block in enumerate(content):
        field = f"content.{index}"
        kinds.append(None)
        if not problems.typed(block, "object", field):
            continue
        assert isinstance(block, dict)
        for key in ("type", "value"):
            if key not in block:
                problems.add(f"{field}.{key}", f"The content {key} is required for every content block.")
            elif problems.text(block[key], f"{field}.{key}", min_length=1) and key == "type":
                kinds[-1] = block[key].lower()
    _check_content_order(problems, kinds)


def _check_content_order(problems: _Problems, kinds: list[str | None]) -> None:
    """text/plain first, then text/html, then anything else; each of the two at most once."""
    for special in ("text/plain", "text/html"):
        places = [i for i, kind in enumerate(kinds) if kind == special]
        if len(places) > 1:
            problems.add(f"content.{places[1]}.type", "If present, text/plain and text/html may only be provided once.")
    allowed_before = {"text/plain": set(), "text/html": {"text/plain"}}
    for index, kind in enumerate(kinds):
        if kind in allowed_before and any(k not in allowed_before[kind] | {kind} for k in kinds[:index] if k is not None):
            problems.add(f"content.{index}.type", ErrorWording.CONTENT_ORDER)


def _check_attachments(problems: _Problems, value: object) -> None:
    if value is _MISSING or not problems.typed(value, "array", "attachments"):
        return
    assert isinstance(value, list)
    for index, item in enumerate(value):
        field = f"attachments.{index}"
        if not problems.typed(item, "object", field):
            continue
        assert isinstance(item, dict)
        for key in ("content", "filename"):
            if key not in item:
                problems.add(f"{field}.{key}", f"The attachment {key} is required.")
        if "content" in item and problems.text(item["content"], f"{field}.content", min_length=1):
            try:
                binascii.a2b_base64(item["content"], strict_mode=True)
            except (binascii.Error, ValueError):
                problems.add(f"{field}.content", "The attachment content must be base64 encoded.")
        if "filename" in item:
            problems.typed(item["filename"], "string", f"{field}.filename")
        if "type" in item:
            problems.text(item["type"], f"{field}.type", min_length=1)
        if "content_id" in item:
            problems.typed(item["content_id"], "string", f"{field}.content_id")
        if "disposition" in item and item["disposition"] not in ("inline", "attachment"):
            problems.add(f"{field}.disposition", "The attachment disposition must be either inline or attachment.")


def _check_reply_to_list(problems: _Problems, payload: dict[str, object]) -> None:
    value = payload.get("reply_to_list", _MISSING)
    if value is _MISSING or not problems.typed(value, "array", "reply_to_list"):
        return
    assert isinstance(value, list)
    if "reply_to" in payload:
        problems.add("reply_to_list", "You can use either the reply_to property or reply_to_list property but not both.")
    if len(value) > MAX_RECIPIENTS:
        problems.add("reply_to_list", f"The reply_to_list may not hold more than {MAX_RECIPIENTS} addresses.")
    if len({repr(sorted(v.items())) if isinstance(v, dict) else repr(v) for v in value}) != len(value):
        problems.add("reply_to_list", "The reply_to_list must not repeat an entry.")
    for index, entry in enumerate(value):
        _check_address(problems, entry, f"reply_to_list.{index}")


def _check_headers(problems: _Problems, value: object, field: str) -> None:
    if value is _MISSING or not problems.typed(value, "object", field):
        return
    assert isinstance(value, dict)
    for name, header in value.items():
        if name.lower() in FORBIDDEN_HEADERS:
            problems.add(f"{field}.{name}", f"The {name} header is reserved and cannot be set; use the matching mail-send field.")
        problems.typed(header, "string", f"{field}.{name}")


def _string_pairs_bytes(problems: _Problems, value: dict[str, object], field: str, *, strings_only: bool) -> int:
    """Total UTF-8 size of keys and values; records non-string values when they are refused."""
    size = 0
    for key, item in value.items():
        if isinstance(item, str):
            size += len(key.encode()) + len(item.encode())
        elif strings_only:
            problems.typed(item, "string", f"{field}.{key}")
    return size


def _check_substitutions(problems: _Problems, value: object, field: str) -> None:
    if value is _MISSING or not problems.typed(value, "object", field):
        return
    assert isinstance(value, dict)
    if _string_pairs_bytes(problems, value, field, strings_only=True) >= MAX_SUBSTITUTION_BYTES:
        problems.add(field, f"The total size of substitutions must stay under {MAX_SUBSTITUTION_BYTES:,} bytes per personalization.")


def _check_custom_args(problems: _Problems, value: object, field: str, *, strings_only: bool, own: dict[str, object] | None = None) -> None:
    """custom_args: an object of strings under 10,000 bytes (the schema types only the top level)."""
    if not problems.typed(value, "object", field):
        return
    assert isinstance(value, dict)
    if own is not None:
        # Per-personalization values: the official schema leaves them untyped, SendGrid wants strings.
        for key, item in own.items():
            problems.typed(item, "string", f"{field}.{key}")
    if _string_pairs_bytes(problems, value, field, strings_only=strings_only) >= MAX_ARGS_BYTES:
        problems.add(field, f"The total size of custom_args must stay under {MAX_ARGS_BYTES:,} bytes.")


def _check_categories(problems: _Problems, value: object) -> None:
    if value is _MISSING or not problems.typed(value, "array", "categories"):
        return
    assert isinstance(value, list)
    if len(value) > MAX_CATEGORIES:
        problems.add("categories", f"You may not have more than {MAX_CATEGORIES} categories per request; this one has {len(value)}.")
    hashable = [v if isinstance(v, str) else repr(v) for v in value]
    if len(set(hashable)) != len(hashable):
        problems.add("categories", "The categories must be unique.")
    for index, category in enumerate(value):
        field = f"categories.{index}"
        if problems.text(category, field, max_length=MAX_CATEGORY_LENGTH) and not category.isascii():
            problems.add(field, "A category name must contain only ASCII characters.")


def _check_send_at(problems: _Problems, value: object, field: str, now: float) -> None:
    if value is _MISSING or not problems.typed(value, "integer", field):
        return
    assert isinstance(value, (int, float))
    if value > now + MAX_SCHEDULE_SECONDS:
        problems.add(field, "The send_at parameter must be a unix timestamp no more than 72 hours in the future.")


def _check_asm(problems: _Problems, value: object) -> None:
    if value is _MISSING or not problems.typed(value, "object", "asm"):
        return
    assert isinstance(value, dict)
    if "group_id" not in value:
        problems.add("asm.group_id", "The asm group_id is required when asm is used.")
    else:
        problems.typed(value["group_id"], "integer", "asm.group_id")
    groups = value.get("groups_to_display", _MISSING)
    if groups is _MISSING or not problems.typed(groups, "array", "asm.groups_to_display"):
        return
    assert isinstance(groups, list)
    if len(groups) > 25:
        problems.add("asm.groups_to_display", "The asm groups_to_display may hold at most 25 group ids.")
    for index, group in enumerate(groups):
        problems.typed(group, "integer", f"asm.groups_to_display.{index}")


def _check_settings(problems: _Problems, value: object, field: str, table: Mapping[str, Mapping[str, str]]) -> None:
    """mail_settings / tracking_settings: known sub-objects whose members have fixed types."""
    if value is _MISSING or not problems.typed(value, "object", field):
        return
    assert isinstance(value, dict)
    for name, members in table.items():
        setting = value.get(name, _MISSING)
        if setting is _MISSING or not problems.typed(setting, "object", f"{field}.{name}"):
            continue
        assert isinstance(setting, dict)
        for member, expected in members.items():
            if member in setting:
                problems.typed(setting[member], expected, f"{field}.{name}.{member}")
