"""The official SendGrid Mail Send schema, corrected as its README says.

The spec file is found through READERFIRST_SENDGRID_SPEC (`.ci/run` sets it to
`../shared/sendgrid/tsg_mail_v3.json` beside the checkout), else at that same default place.
When it is absent a test that needs it is skipped locally and fails in CI (`tools.missing`).

`assert_payload_valid` checks a payload against that schema and against the limits the
schema does not encode (our emulator's validator, itself tested against the schema).
"""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from pipeline.emulator import validate_mail_send
from tests.tools import ROOT, missing

__all__ = ["SPEC_VARIABLE", "DEFAULT_SPEC", "spec_path", "request_schema", "official_validator", "assert_payload_valid", "resolve_refs",
           "drop_bogus_max_properties"]

SPEC_VARIABLE = "READERFIRST_SENDGRID_SPEC"
DEFAULT_SPEC = ROOT.parent / "shared" / "sendgrid" / "tsg_mail_v3.json"


def spec_path() -> Path:
    """The official spec file; skips the calling test locally (fails it in CI) when it is absent."""
    configured = os.environ.get(SPEC_VARIABLE, "").strip()
    path = Path(configured).expanduser() if configured else DEFAULT_SPEC
    if not path.is_file():
        missing(f"the official SendGrid spec (set {SPEC_VARIABLE} to tsg_mail_v3.json; not found at {path})")
    return path


def resolve_refs(node: Any, spec: dict[str, Any]) -> Any:
    """Inline every local $ref (siblings of a $ref are kept, as OpenAPI 3.1 allows)."""
    if isinstance(node, list):
        return [resolve_refs(item, spec) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return resolve_refs({**target, **siblings}, spec)
    return {key: resolve_refs(value, spec) for key, value in node.items()}


def drop_bogus_max_properties(node: Any) -> None:
    """Remove `maxProperties: 10000`, the spec's mis-encoding of a 10,000-byte limit."""
    if isinstance(node, dict):
        if node.get("maxProperties") == 10000:
            del node["maxProperties"]
        for value in node.values():
            drop_bogus_max_properties(value)
    elif isinstance(node, list):
        for value in node:
            drop_bogus_max_properties(value)


def request_schema(corrected: bool = True) -> dict[str, Any]:
    """The request-body schema of POST /v3/mail/send, with the README's two corrections."""
    spec = json.loads(spec_path().read_text())
    body = resolve_refs(spec["paths"]["/v3/mail/send"]["post"]["requestBody"], spec)
    schema = copy.deepcopy(body["content"]["application/json"]["schema"])
    if corrected:
        schema["properties"]["custom_args"] = {"type": "object", "additionalProperties": {"type": "string"}}
        drop_bogus_max_properties(schema)
    return schema


@lru_cache(maxsize=1)
def official_validator() -> Draft202012Validator:
    """The corrected official schema as a validator, with format checking (emails) on."""
    schema = request_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def assert_payload_valid(payload: dict) -> None:
    """Fail unless `payload` passes the official schema and every documented limit."""
    schema_errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}"
                     for e in official_validator().iter_errors(payload)]
    limit_errors = [str(problem.as_json()) for problem in validate_mail_send(payload)]
    assert not schema_errors and not limit_errors, f"invalid SendGrid payload: {schema_errors + limit_errors}"
