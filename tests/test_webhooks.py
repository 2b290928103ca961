"""Our signatures, checked by the independent `standardwebhooks` verifier."""

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.exporters.webhook.signing import SecretFormatError, parse_secret, sign
from tests.configs import webhook_secret


def headers(secret, msg_id, timestamp, body):
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(parse_secret(secret), msg_id, timestamp, body),
    }


def test_signature_verifies_with_standardwebhooks():
    secret = webhook_secret()
    body = b'{"type":"alert.raised","data":{"x":1}}'
    now = int(time.time())
    payload = Webhook(secret).verify(body, headers(secret, "msg_1", now, body))
    assert payload == {"type": "alert.raised", "data": {"x": 1}}


def test_altered_body_wrong_secret_and_replay_fail():
    secret = webhook_secret()
    body = b'{"type":"alert.raised"}'
    now = int(time.time())
    good = headers(secret, "msg_1", now, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"type":"alert.resolved"}', good)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhook_secret()).verify(body, good)
    replayed = headers(secret, "msg_1", now - 3600, body)  # a captured request sent again later
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, replayed)


@pytest.mark.parametrize("bad", ["secret", "whsec_not*base64", "whsec_c2hvcnQ="])
def test_bad_secrets_are_refused(bad):
    with pytest.raises(SecretFormatError):
        parse_secret(bad)
