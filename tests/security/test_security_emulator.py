"""The SendGrid emulator keeps every reader's mail: nothing of it is readable without its key."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from pipeline.emulator import running_emulator

INSPECTION = ["/_emulator/messages?to=ada%40example.com", "/_emulator/stats", "/_emulator/webhook-public-key"]


@pytest.mark.parametrize("path", INSPECTION)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic U0cuazo=", "Bearer "])
def test_inspection_endpoints_refuse_without_the_key(tmp_path, path, header):
    """Every /_emulator/ endpoint answers 401 without the exact Bearer key, and 200 with it."""
    with running_emulator(store_path=tmp_path / "e.db") as emulator:
        request = urllib.request.Request(emulator.url + path, headers={"Authorization": header} if header else {})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        good = urllib.request.Request(emulator.url + path, headers={"Authorization": f"Bearer {emulator.api_key}"})
        with urllib.request.urlopen(good, timeout=10) as answer:
            assert answer.status == 200
