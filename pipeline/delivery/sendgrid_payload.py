"""Building SendGrid v3 Mail Send payloads from batches, within every documented limit.

One batch is one request: the variant's HTML and text are the content, each reader is one
personalization whose `substitutions` fill the merge tags. HTML and text get different tag
names because their values are escaped differently. Reader values are escaped so that they
contain no `%%`: a value can never smuggle in another substitution tag.

A merge field with the same value for every reader of a batch (a reason everyone in the
variant shares; all of them in the holdout's batches) is written into the content once,
escaped the same way, instead of into every personalization: smaller requests, the same mail.

A per-reader Reply-To (`reply+<token>@domain`, see `pipeline.audience.reply_address`) cannot be
a personalization field: SendGrid has `reply_to` only at the top of a request and refuses a
`Reply-To` header. It documents substitutions as applying to the reply-to, so the request's
`reply_to` is `REPLY_TAG@domain` and each personalization substitutes its reader's local part
(a substitution tag made only of characters an address may hold, so the field stays an address).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from pipeline.delivery.transport import MAX_BATCH, Envelope, OutgoingBatch
from pipeline.rendering.merge import MergeTemplate, html_value, text_value

__all__ = ["build_payload", "html_key", "text_key", "SUBSTITUTIONS_LIMIT", "CUSTOM_ARGS_LIMIT",
           "REPLY_TAG", "substitutions_size"]

SUBSTITUTIONS_LIMIT = 10_000  # bytes per personalization (SendGrid's documented, safe figure)
CUSTOM_ARGS_LIMIT = 10_000
REPLY_TAG = "%%rf-reply%%"  # the reply address's local part, per reader: atext characters only
_SHRINKABLE = ("first_name", "last_name")  # reader-typed values; ours are short and bounded


def html_key(name: str) -> str:
    """The substitution key of merge field `name` in the HTML part."""
    return f"%%rf:{name}%%"


def text_key(name: str) -> str:
    """The substitution key of merge field `name` in the plain-text part."""
    return f"%%rft:{name}%%"


def _content(template: MergeTemplate, key, shared: dict[str, str]) -> str:
    """The part with a substitution key for each tag, or the value itself where the batch shares it."""
    parts = list(template.parts)
    for i in range(1, len(parts), 2):
        name = parts[i]
        parts[i] = shared[name] if name in shared else key(name)
    return "".join(parts)


def _shared_values(envelopes: Sequence[Envelope], names: Iterable[str]) -> dict[str, str]:
    """Merge fields whose raw value is the same for every reader of a batch of several."""
    if len(envelopes) < 2:
        return {}
    first = envelopes[0].values
    shared = {}
    for name in names:
        value = first.get(name, "")
        if all(e.values.get(name, "") == value for e in envelopes):
            shared[name] = value
    return shared


def substitutions_size(substitutions: dict[str, str]) -> int:
    """Bytes of a personalization's substitutions, keys and values, as SendGrid counts them."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items())


def _fits(substitutions: dict[str, str]) -> bool:
    # A UTF-8 character is at most 4 bytes: most readers are decided without encoding anything.
    chars = sum(map(len, substitutions)) + sum(map(len, substitutions.values()))
    return chars * 4 < SUBSTITUTIONS_LIMIT or substitutions_size(substitutions) < SUBSTITUTIONS_LIMIT


class _Escaped(dict):
    """value -> escaped value, for one batch: readers of a variant share most reasons."""

    def __init__(self, escape) -> None:
        super().__init__()
        self.escape = escape

    def __missing__(self, value: str) -> str:
        found = self[value] = self.escape(value)
        return found


def _substitutions(envelope: Envelope, html_tags: Iterable[str], text_tags: Iterable[str],
                   escaped: tuple[_Escaped, _Escaped] | None = None) -> dict[str, str]:
    html_of, text_of = escaped or (_Escaped(html_value), _Escaped(text_value))
    values = dict(envelope.values)
    for _ in range(8):
        subs = {key: html_of[values.get(t, "")] for t, key in html_tags}
        subs.update({key: text_of[values.get(t, "")] for t, key in text_tags})
        if _fits(subs):
            return subs
        # Only an absurdly long name gets here: halve it rather than break the request.
        for name in _SHRINKABLE:
            values[name] = values.get(name, "")[: max(1, len(values.get(name, "")) // 2)]
    raise ValueError(f"substitutions for {envelope.email} exceed {SUBSTITUTIONS_LIMIT} bytes")


def _ascii_category(value: str) -> str:
    return value.encode("ascii", "replace").decode()[:255]


def _reply_to(envelopes: Sequence[Envelope]) -> tuple[dict[str, str] | None, dict[int, str]]:
    """The request's `reply_to`, and each reader's substitution for REPLY_TAG (by index)."""
    if not envelopes[0].reply_to:
        return None, {}
    parts = [e.reply_to.rpartition("@") for e in envelopes]
    domain = parts[0][2]
    if len(envelopes) == 1 or any(p[2] != domain or not p[1] for p in parts):
        if len(envelopes) > 1:
            raise ValueError(f"readers of one batch have reply addresses on different domains ({domain!r})")
        return {"email": envelopes[0].reply_to}, {}
    return {"email": f"{REPLY_TAG}@{domain}"}, {i: p[0] for i, p in enumerate(parts)}


def build_payload(batch: OutgoingBatch, *, sandbox: bool = False, asm_group_id: int | None = None) -> dict:
    """The JSON body of one POST /v3/mail/send for `batch`."""
    if len(batch.envelopes) > MAX_BATCH:
        raise ValueError(f"{len(batch.envelopes)} readers in one request; the limit is {MAX_BATCH}")
    shared = _shared_values(batch.envelopes, set(batch.body.html.tags) | set(batch.body.text.tags))
    html_tags = [(t, html_key(t)) for t in sorted(set(batch.body.html.tags)) if t not in shared]
    text_tags = [(t, text_key(t)) for t in sorted(set(batch.body.text.tags)) if t not in shared]
    escaped = (_Escaped(html_value), _Escaped(text_value))
    # custom_args differ per reader only by the reader id (a whole number): the longest one bounds them all.
    widest = max((str(e.reader_id) for e in batch.envelopes), key=len)
    widest_args = {"edition_id": batch.edition_id, "variant_id": batch.variant_id, "reader_id": widest, "holdout": "0"}
    if len(json.dumps(widest_args).encode()) >= CUSTOM_ARGS_LIMIT:
        raise ValueError(f"custom_args of batch {batch.batch_id} exceed {CUSTOM_ARGS_LIMIT} bytes")
    reply_to, reply_locals = _reply_to(batch.envelopes)
    personalizations = []
    for index, envelope in enumerate(batch.envelopes):
        to = {"email": envelope.email}
        if envelope.name:
            to["name"] = envelope.name
        personalizations.append({
            "to": [to],
            "subject": envelope.subject,
            "substitutions": _substitutions(envelope, html_tags, text_tags, escaped)
            | ({REPLY_TAG: reply_locals[index]} if reply_locals else {}),
            "custom_args": {"reader_id": str(envelope.reader_id), "holdout": "1" if envelope.holdout else "0"},
            "headers": {"List-Unsubscribe": f"<{envelope.unsubscribe_url}>"},
        })
    categories = list(dict.fromkeys(_ascii_category(c) for c in batch.categories if c))[:10]
    payload: dict = {
        "personalizations": personalizations,
        "from": {"email": batch.from_email, "name": batch.from_name} if batch.from_name else {"email": batch.from_email},
        # What every reader of the batch shares is said once; SendGrid merges it into each
        # personalization's custom_args and headers (events carry all four arguments).
        "custom_args": {"edition_id": batch.edition_id, "variant_id": batch.variant_id},
        "headers": {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        "content": [{"type": "text/plain",
                     "value": _content(batch.body.text, text_key, {t: text_value(v) for t, v in shared.items()})},
                    {"type": "text/html",
                     "value": _content(batch.body.html, html_key, {t: html_value(v) for t, v in shared.items()})}],
    }
    if reply_to is not None:
        payload["reply_to"] = reply_to
    if categories:
        payload["categories"] = categories
    if asm_group_id is not None:
        payload["asm"] = {"group_id": int(asm_group_id)}
    if sandbox:
        payload["mail_settings"] = {"sandbox_mode": {"enable": True}}
    return payload
