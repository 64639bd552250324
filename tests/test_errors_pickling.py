"""Errors raised in a task come back from a Dask worker pickled: each keeps its type, words and fields."""

from __future__ import annotations

import pickle

import pytest

from pipeline.delivery.addresses import UnsendableAddress
from pipeline.delivery.sendgrid import SendGridRefused, _Transient
from pipeline.errors import InputProblem, InvalidAudience, InvalidEdition, PipelineError

ERRORS = [
    SendGridRefused(400, [{"message": "Invalid email", "field": "personalizations.0.to.0.email"}], "v1-abc"),
    _Transient("SendGrid answered HTTP 503", maybe_delivered=True),
    UnsendableAddress("ann@example", "no dot in the domain"),
    InvalidEdition([InputProblem("e.yaml", 3, "sections[a].kind", "hero", "unknown kind")]),
    InvalidAudience([InputProblem("a.csv", 2, "email", "x", "not an address")]),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_an_error_survives_the_trip_back_from_a_worker(error):
    """Unpickled, the error is the same class with the same message and the same fields."""
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and isinstance(back, PipelineError)
    assert str(back) == str(error) and vars(back) == vars(error)


def test_a_refusal_keeps_the_readers_sendgrid_named():
    """A 400 naming one personalization still names it after the trip, so that reader alone is left out."""
    refused = pickle.loads(pickle.dumps(SendGridRefused(
        400, [{"message": "Invalid email", "field": "personalizations.2.to.0.email"}], "v1-abc")))
    assert refused.refused_personalizations() == {2: "SendGrid refused this reader: Invalid email (field to.0.email)"}
