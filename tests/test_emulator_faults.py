"""Fault injection: 429 with reset headers, 500, slow answers and dropped connections, at configured rates."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import sendgrid
from python_http_client.exceptions import HTTPError, InternalServerError, TooManyRequestsError

from pipeline.emulator import Fault, FaultPlan, SendGridEmulator, running_emulator
from pipeline.emulator.faults import FaultDecider
from pipeline.errors import ConfigurationError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sendgrid" / "mail_send_personalized.json"


def payload_for(batch: int) -> dict[str, Any]:
    """The recorded three-reader payload, with addresses unique to `batch`."""
    payload = json.loads(FIXTURE.read_text())
    for index, item in enumerate(payload["personalizations"]):
        item["to"][0]["email"] = f"reader{batch}-{index}@example.com"
    return payload


def client_for(emulator: SendGridEmulator, timeout: float = 10) -> sendgrid.SendGridAPIClient:
    """The official client pointed at the emulator, with a timeout."""
    client = sendgrid.SendGridAPIClient(emulator.api_key, host=emulator.url)
    client.client.timeout = timeout
    return client


def test_rate_limited_request_gets_429_with_reset_headers() -> None:
    """A 429 fault answers SendGrid's body with X-RateLimit-Limit/Remaining/Reset (epoch s, ~1 s ahead)."""
    with running_emulator(faults=FaultPlan(rate_limited=1.0)) as emulator:
        before = time.time()
        with pytest.raises(TooManyRequestsError) as limited:
            client_for(emulator).client.mail.send.post(request_body=payload_for(0))
        headers = limited.value.headers
        assert json.loads(limited.value.body) == {"errors": [{"field": None, "message": "too many requests"}]}
        assert int(headers["X-RateLimit-Limit"]) > 0
        assert headers["X-RateLimit-Remaining"] == "0"
        assert before < int(headers["X-RateLimit-Reset"]) <= time.time() + 2
        assert emulator.store.total() == 0 and emulator.store.requests() == 0


def test_server_error_fault_gets_500_and_stores_nothing() -> None:
    """A 500 fault answers SendGrid's error body and delivers nothing."""
    with running_emulator(faults=FaultPlan(server_error=1.0)) as emulator:
        with pytest.raises(InternalServerError) as failed:
            client_for(emulator).client.mail.send.post(request_body=payload_for(0))
        assert json.loads(failed.value.body)["errors"][0]["message"] == "internal server error"
        assert emulator.store.total() == 0


def test_dropped_connection_surfaces_as_network_error() -> None:
    """A drop fault closes the socket without an answer; the client raises a connection error and nothing is stored."""
    with running_emulator(faults=FaultPlan(drop=1.0)) as emulator:
        with pytest.raises((urllib.error.URLError, http.client.RemoteDisconnected, ConnectionError)):
            client_for(emulator).client.mail.send.post(request_body=payload_for(0))
        assert emulator.store.total() == 0
        assert emulator.stats()["faults"]["drop"] == 1


def test_dropped_connection_sends_no_bytes() -> None:
    """Over a raw socket, a dropped request gets end-of-stream and not a single byte of HTTP."""
    with running_emulator(faults=FaultPlan(drop=1.0)) as emulator:
        host, port = emulator.url.removeprefix("http://").split(":")
        body = json.dumps(payload_for(0)).encode()
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(
                b"POST /v3/mail/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {emulator.api_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert connection.recv(1024) == b""


def test_slow_answer_still_delivers_after_client_timeout() -> None:
    """A slow answer can outlast the client's timeout, yet the message is delivered: a timeout is not a failure."""
    with running_emulator(faults=FaultPlan(slow=1.0, slow_seconds=1.5)) as emulator:
        with pytest.raises((TimeoutError, urllib.error.URLError, socket.timeout)):
            client_for(emulator, timeout=0.3).client.mail.send.post(request_body=payload_for(0))
        deadline = time.monotonic() + 10
        while emulator.store.total() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emulator.store.total() == 3
        assert emulator.stats()["faults"]["slow"] == 1


def test_slow_answer_is_processed_normally() -> None:
    """With a patient client, a slow answer is an ordinary 202 and the readers get their copies."""
    with running_emulator(faults=FaultPlan(slow=1.0, slow_seconds=0.05)) as emulator:
        response = client_for(emulator).client.mail.send.post(request_body=payload_for(0))
        assert response.status_code == 202 and response.headers["X-Message-Id"]
        assert [m.subject for m in emulator.store.messages_for("reader0-1@example.com")] == ["Grace, your Monday edition"]


def test_fault_rates_are_roughly_honoured_and_faulted_requests_store_nothing() -> None:
    """Over 400 requests at a 40% fault rate, each kind lands near its share and only 202s are stored."""
    plan = FaultPlan.spread(0.4, [Fault.RATE_LIMITED, Fault.SERVER_ERROR, Fault.DROP, Fault.SLOW], slow_seconds=0.0, seed=7)
    outcomes: dict[str, int] = {"202": 0, "429": 0, "500": 0, "drop": 0}
    with running_emulator(faults=plan) as emulator:
        client = client_for(emulator)
        for batch in range(400):
            try:
                client.client.mail.send.post(request_body=payload_for(batch))
                outcomes["202"] += 1
            except HTTPError as error:
                outcomes[str(error.status_code)] += 1
            except (urllib.error.URLError, ConnectionError):
                outcomes["drop"] += 1
        stats = emulator.stats()
        assert emulator.store.requests() == outcomes["202"] == stats["accepted"]
        assert emulator.store.total() == 3 * outcomes["202"]
    faults = stats["faults"]
    assert (faults["429"], faults["500"], faults["drop"]) == (outcomes["429"], outcomes["500"], outcomes["drop"])
    for kind in ("429", "500", "drop", "slow"):
        # Expected 40 each (10% of 400); binomial sd ~6, so 15..70 fails only on a broken draw.
        assert 15 <= faults[kind] <= 70, faults
    assert 150 <= sum(faults.values()) <= 210


def test_same_seed_gives_same_faults() -> None:
    """Two deciders with the same plan and seed draw the same sequence of faults; another seed differs."""
    plan = FaultPlan.spread(0.5, seed=42)
    one, two = FaultDecider(plan), FaultDecider(plan)
    other = FaultDecider(FaultPlan.spread(0.5, seed=43))
    sequence = [one.decide() for _ in range(200)]
    assert sequence == [two.decide() for _ in range(200)]
    assert sequence != [other.decide() for _ in range(200)]
    assert 60 <= sum(fault is not None for fault in sequence) <= 140


def test_spread_shares_the_rate_among_chosen_kinds() -> None:
    """--fault-rate is split equally among the chosen kinds and the others stay at zero."""
    plan = FaultPlan.spread(0.3, ["429", "drop"])
    assert (plan.rate_limited, plan.server_error, plan.slow, plan.drop) == pytest.approx((0.15, 0.0, 0.0, 0.15))


@pytest.mark.parametrize("rates", [{"rate_limited": 1.2}, {"drop": -0.1}, {"slow": 0.6, "drop": 0.6}])
def test_impossible_rates_are_configuration_errors(rates: dict[str, float]) -> None:
    """Rates outside 0..1, or summing over 1, are refused as configuration errors."""
    with pytest.raises(ConfigurationError):
        FaultPlan(**rates)


def test_drop_after_stores_the_request_and_posts_its_events_but_never_answers(receiver) -> None:
    """A drop-after fault accepts and stores the request and posts processed and delivered events, then cuts the connection."""
    with running_emulator(faults=FaultPlan(drop_after=1.0), webhook_url=receiver.url, event_batch_wait=0.01) as emulator:
        with pytest.raises((urllib.error.URLError, http.client.RemoteDisconnected, ConnectionError)):
            client_for(emulator).client.mail.send.post(request_body=payload_for(0))
        assert emulator.store.total() == 3 and emulator.stats()["faults"]["drop-after"] == 1
        assert emulator.flush_events(10)
    kinds = sorted((event["email"], event["event"]) for event in receiver.events())
    assert kinds == sorted((f"reader0-{i}@example.com", kind) for i in range(3) for kind in ("processed", "delivered"))


def test_drop_before_reading_stores_nothing_and_posts_nothing(receiver) -> None:
    """A drop fault cuts the connection before the body is read: nothing is stored and no event is posted."""
    with running_emulator(faults=FaultPlan(drop=1.0), webhook_url=receiver.url, event_batch_wait=0.01) as emulator:
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):
            client_for(emulator).client.mail.send.post(request_body=payload_for(0))
        assert emulator.flush_events(10)
        assert emulator.store.total() == 0 and emulator.stats()["faults"]["drop"] == 1
    assert receiver.events() == []


def test_spread_includes_drop_after_by_default() -> None:
    """--fault-rate shares the rate among all five kinds, drop-after included."""
    plan = FaultPlan.spread(0.5)
    assert plan.drop_after == pytest.approx(0.1) and plan.drop == pytest.approx(0.1)
