"""Webhook signatures: ours agree with an independent implementation and the spec's own text."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks import WebhookVerificationError as TheirError

from services.partners.signing import (
    WebhookVerificationError,
    new_secret,
    sign,
    signed_headers,
    verify_signature,
)

BODY = b'{"type":"street_need.changed","data":{"area_id":"way/1","count":3}}'


def test_the_standardwebhooks_package_verifies_our_deliveries() -> None:
    secret = new_secret()
    headers = signed_headers(secret, "msg_42", BODY)
    assert Webhook(secret).verify(BODY, headers)["data"]["count"] == 3


def test_a_hand_written_check_following_the_spec_text_agrees() -> None:
    # Spec: sign "{id}.{timestamp}.{body}" with HMAC-SHA256 keyed by the base64-decoded secret after
    # the whsec_ prefix; header `v1,<base64 signature>`.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    ts = 1674087231
    expected = base64.b64encode(
        hmac.new(
            base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            b"msg_p5jXN8AQM9LWM0D4loKWxJek." + str(ts).encode() + b"." + BODY,
            hashlib.sha256,
        ).digest()
    ).decode()
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, BODY) == f"v1,{expected}"


def test_we_verify_what_the_standardwebhooks_package_signs() -> None:
    secret = new_secret()
    ts = int(time.time())
    signature = Webhook(secret).sign("msg_1", dt.datetime.fromtimestamp(ts, dt.UTC), BODY.decode())
    verify_signature(
        secret,
        {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(ts), "Webhook-Signature": f"v0,bogus {signature}"},
        BODY,
    )


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "secret"])
def test_tampering_is_rejected_by_both_implementations(tamper: str) -> None:
    secret, body = new_secret(), BODY
    headers = signed_headers(secret, "msg_7", BODY)
    if tamper == "body":
        body = BODY.replace(b"3", b"4")
    elif tamper == "id":
        headers["webhook-id"] = "msg_8"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1)
    else:
        secret = new_secret()
    with pytest.raises(WebhookVerificationError):
        verify_signature(secret, headers, body)
    with pytest.raises(TheirError):
        Webhook(secret).verify(body, headers)


def test_an_expired_or_future_timestamp_is_rejected_even_when_correctly_signed() -> None:
    secret, now = new_secret(), time.time()
    old = signed_headers(secret, "msg_9", BODY, timestamp=int(now) - 301)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_signature(secret, old, BODY, now=now)
    with pytest.raises(TheirError):
        Webhook(secret).verify(BODY, old)
    future = signed_headers(secret, "msg_9", BODY, timestamp=int(now) + 301)
    with pytest.raises(WebhookVerificationError, match="future"):
        verify_signature(secret, future, BODY, now=now)
    verify_signature(secret, old, BODY, tolerance_s=600, now=now)  # a wider window accepts it


def test_missing_headers_are_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_signature(new_secret(), {"webhook-id": "msg_1"}, BODY)


def test_secrets_are_prefixed_random_and_long_enough() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_")
    assert len(base64.b64decode(a.removeprefix("whsec_"))) >= 24
