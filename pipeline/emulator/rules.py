"""SendGrid's mail-send limits and vocabulary, in one place the validator and server share.

The numbers come from ../shared/sendgrid/README.md ("Limits the spec does not encode") and from
the official OpenAPI description; each is named so a test or a caller can refer to it.
"""

from __future__ import annotations

import re

__all__ = [
    "ErrorWording",
    "FORBIDDEN_HEADERS",
    "MAIL_SETTINGS",
    "MAX_ARGS_BYTES",
    "MAX_BODY_BYTES",
    "MAX_CATEGORIES",
    "MAX_CATEGORY_LENGTH",
    "MAX_PERSONALIZATIONS",
    "MAX_RECIPIENTS",
    "MAX_SCHEDULE_SECONDS",
    "MAX_SUBSTITUTION_BYTES",
    "TRACKING_SETTINGS",
    "help_url",
    "is_email",
    "json_type",
]

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000  # to + cc + bcc over the whole request
MAX_SUBSTITUTION_BYTES = 10_000  # per personalization; the docs also say 50,000, 10,000 is the safe one
MAX_ARGS_BYTES = 10_000
MAX_CATEGORIES = 10
MAX_CATEGORY_LENGTH = 255
MAX_SCHEDULE_SECONDS = 72 * 3600
# "Under 30 MB": decimal megabytes, the stricter reading, so nothing we accept is refused by SendGrid.
MAX_BODY_BYTES = 30_000_000

# Compared lower-cased: SendGrid refuses these whatever their case.
FORBIDDEN_HEADERS = frozenset(
    name.lower()
    for name in (
        "To", "From", "Subject", "Reply-To", "CC", "BCC", "Content-Type",
        "Content-Transfer-Encoding", "received", "dkim-signature", "x-sg-id", "x-sg-eid",
    )
)

# Member types of the settings objects, as the official schema declares them.
MAIL_SETTINGS: dict[str, dict[str, str]] = {
    "bypass_list_management": {"enable": "boolean"},
    "bypass_spam_management": {"enable": "boolean"},
    "bypass_bounce_management": {"enable": "boolean"},
    "bypass_unsubscribe_management": {"enable": "boolean"},
    "footer": {"enable": "boolean", "text": "string", "html": "string"},
    "sandbox_mode": {"enable": "boolean"},
}
TRACKING_SETTINGS: dict[str, dict[str, str]] = {
    "click_tracking": {"enable": "boolean", "enable_text": "boolean"},
    "open_tracking": {"enable": "boolean", "substitution_tag": "string"},
    "subscription_tracking": {"enable": "boolean", "text": "string", "html": "string", "substitution_tag": "string"},
    "ganalytics": {
        "enable": "boolean",
        "utm_source": "string",
        "utm_medium": "string",
        "utm_term": "string",
        "utm_content": "string",
        "utm_campaign": "string",
    },
}


class ErrorWording:
    """SendGrid's own error messages, so that one seen in the emulator can be searched in SendGrid's docs."""

    # A fragment of the templates below, hence the doubled braces that str.format turns into one.
    ADDRESS_EXAMPLE = 'e.g. {{"email": "example@example.com"}} or {{"email": "example@example.com", "name": "Example Recipient"}}'
    CONTENT_ORDER = "If present, text/plain must be first, followed by text/html, followed by any other content."
    FROM_REQUIRED = (
        "The {field} object must be provided for every email send. It is an object that requires the email "
        "parameter, but may also contain a name parameter. " + ADDRESS_EXAMPLE + "."
    )
    EMAIL_REQUIRED = "The {field} object must at least have an email address and may also contain a name. " + ADDRESS_EXAMPLE + "."
    TOO_MANY_PERSONALIZATIONS = (
        "The personalization block is limited to {limit} personalizations per API request. You have provided {count} "
        "personalizations. Please consider splitting this into multiple requests and resending your request."
    )
    TO_REQUIRED = (
        "The to array is required for all personalization objects, "
        "and must have at least one email object with a valid email address."
    )
    DUPLICATE_IN_PERSONALIZATION = (
        "Each email address in the personalization block should be unique between to, cc, and bcc. "
        "We found the first duplicate instance of [{address}] in the {field} field."
    )
    DUPLICATE_IN_REQUEST = (
        "Each unique email address in the personalizations array should only be included once. "
        "You have included [{address}] more than once (first in personalizations.{first})."
    )
    SUBJECT_REQUIRED = (
        "The subject is required. You can get around this requirement if you use a template with a subject defined "
        "or if every personalization has a subject defined."
    )
    CONTENT_REQUIRED = (
        "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined "
        "content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required."
    )
    SECTIONS_REMOVED = (
        "The sections feature was removed by SendGrid in 2020 and no longer renders; "
        "use substitutions or content instead."
    )


_HELP_ROOT = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"

# A practical RFC 5321 address: dot-atom local part (no leading, trailing or double dot) and a
# dotted host name. Quoted local parts and internationalised addresses are refused, as the
# readers' addresses we send to never need them and SendGrid's own check is at least this strict.
_EMAIL = re.compile(
    r"(?!\.)(?!.*\.\.)[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}(?<!\.)"
    r"@(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z"
)


def is_email(address: str) -> bool:
    """True when `address` is an address SendGrid would accept in an email field."""
    return len(address) <= 254 and _EMAIL.match(address) is not None


def json_type(value: object) -> str:
    """The JSON Schema type name of a decoded JSON value (integral floats count as integers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        # JSON Schema treats 3.0 as an integer; agreeing with it keeps our verdicts the spec's.
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def help_url(field: str | None) -> str | None:
    """SendGrid's documentation anchor for errors on `field` (`personalizations.0.to` -> `#message.personalizations.to`)."""
    if not field:
        return None
    parts = [part for part in field.split(".") if not part.isdigit()][:2]
    return f"{_HELP_ROOT}#message.{'.'.join(parts)}"
