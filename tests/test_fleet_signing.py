"""Signed remote configuration: our JWS check against RFC 8037's example and PyJWT's output."""

from __future__ import annotations

import base64
from pathlib import Path

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.fleet.identity import HubIdError, load_or_create_hub_id, valid_hub_id
from gateway.fleet.jws import JwsError, load_public_key, sign, verify
from gateway.fleet.remote_config import RemoteConfigRefused, open_remote_config

# RFC 8037, Appendix A.4 (Ed25519 signing): the public key "x" and the JWS it gives.
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def _rfc_key() -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(RFC8037_X + "="))


def _pyjwt_token(payload: dict[str, object], key: Ed25519PrivateKey) -> str:
    """Signed by PyJWT, an implementation we did not write."""
    return jwt.api_jws.encode(orjson.dumps(payload), key, algorithm="EdDSA")


def test_the_rfc_8037_example_verifies_and_gives_its_payload() -> None:
    assert verify(RFC8037_JWS, _rfc_key()) == b"Example of Ed25519 signing"


def test_one_changed_character_of_the_rfc_example_is_refused() -> None:
    header, payload, signature = RFC8037_JWS.split(".")
    tampered = f"{header}.{payload[:-1]}h.{signature}"
    with pytest.raises(JwsError, match="signature"):
        verify(tampered, _rfc_key())


def test_pyjwt_signatures_verify_and_ours_verify_in_pyjwt() -> None:
    key = Ed25519PrivateKey.generate()
    token = _pyjwt_token({"hub_id": "hub-1", "version": 1, "config": {}}, key)
    assert orjson.loads(verify(token, key.public_key()))["hub_id"] == "hub-1"
    ours = sign(b'{"a": 1}', key)
    assert jwt.api_jws.decode(ours, key.public_key(), algorithms=["EdDSA"]) == b'{"a": 1}'


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("eyJhbGciOiJub25lIn0.e30.", "algorithm 'none'"),  # alg "none"
        ("eyJhbGciOiJIUzI1NiJ9.e30.AAAA", "algorithm 'HS256'"),
        ("only.two", "three"),
        ("!!!.e30.AAAA", "base64url"),
    ],
)
def test_tokens_that_are_not_eddsa_are_refused_with_a_reason(token: str, reason: str) -> None:
    with pytest.raises(JwsError, match=reason):
        verify(token, _rfc_key())


def test_a_header_with_critical_extensions_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    token = jwt.api_jws.encode(b"{}", key, algorithm="EdDSA", headers={"crit": ["exp"], "exp": 1})
    with pytest.raises(JwsError, match="critical"):
        verify(token, key.public_key())


def test_the_public_key_is_read_from_pem_and_must_be_ed25519() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_public_key(pem).public_bytes_raw() == key.public_bytes_raw()
    with pytest.raises(JwsError, match="PEM"):
        load_public_key(b"not a key")


class TestRemoteConfig:
    key = Ed25519PrivateKey.generate()

    def _open(
        self,
        payload: dict[str, object],
        *,
        running: int = 3,
        signer: Ed25519PrivateKey | None = None,
    ):
        token = _pyjwt_token(payload, signer or self.key).encode()
        return open_remote_config(
            token, self.key.public_key(), hub_id="hub-1", running_version=running
        )

    def test_a_newer_config_for_this_hub_is_opened(self) -> None:
        opened = self._open({"hub_id": "hub-1", "version": 4, "config": {"alert_rules": []}})
        assert (opened.version, opened.sections) == (4, {"alert_rules": []})

    @pytest.mark.parametrize(
        ("payload", "reason"),
        [
            ({"hub_id": "hub-2", "version": 4, "config": {}}, "another hub"),
            ({"hub_id": "hub-1", "version": 2, "config": {}}, "not newer"),
            ({"hub_id": "hub-1", "version": 3, "config": {}}, "is the running version"),
            ({"hub_id": "hub-1", "version": True, "config": {}}, "positive integer"),
            ({"hub_id": "hub-1", "version": 4, "config": []}, "JSON object"),
            (
                {"hub_id": "hub-1", "version": 4, "config": {"gateway": {"data_dir": "/"}}},
                "not gateway",
            ),
        ],
    )
    def test_foreign_stale_and_overreaching_configs_are_refused(
        self, payload: dict[str, object], reason: str
    ) -> None:
        with pytest.raises(RemoteConfigRefused, match=reason):
            self._open(payload)

    def test_a_config_signed_by_another_key_is_refused(self) -> None:
        with pytest.raises(RemoteConfigRefused, match="signature"):
            self._open(
                {"hub_id": "hub-1", "version": 9, "config": {}}, signer=Ed25519PrivateKey.generate()
            )


def test_the_hub_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = load_or_create_hub_id(tmp_path)
    assert valid_hub_id(first)
    assert load_or_create_hub_id(tmp_path) == first
    assert (tmp_path / "hub-id").stat().st_mode & 0o777 == 0o600


def test_a_damaged_hub_id_file_is_an_error_not_a_new_identity(tmp_path: Path) -> None:
    (tmp_path / "hub-id").write_text("hubs/+/#\n")
    with pytest.raises(HubIdError, match="malformed"):
        load_or_create_hub_id(tmp_path)


def test_sign_config_prints_a_jws_the_hub_opens(tmp_path: Path) -> None:
    import subprocess
    import sys

    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    sections = tmp_path / "v7.toml"
    sections.write_text(
        '[[subjects]]\nid = "197001011234"\nbirth_date = 1970-01-01\n'
        '[[alert_rules]]\nkind = "weight"\nvalue = "body_weight"\nabove = 150\n'
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "fleet",
            "sign-config",
            str(sections),
            "--key",
            str(key_file),
            "--hub",
            "hub-1",
            "--version",
            "7",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    opened = open_remote_config(
        result.stdout.strip().encode(), key.public_key(), hub_id="hub-1", running_version=6
    )
    assert opened.version == 7
    assert opened.sections["subjects"][0]["birth_date"] == "1970-01-01"

    sections.write_text('[gateway]\ndata_dir = "/"\n')
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "fleet",
            "sign-config",
            str(sections),
            "--key",
            str(key_file),
            "--hub",
            "hub-1",
            "--version",
            "8",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode != 0 and "remove gateway" in refused.stderr


def test_the_examples_fleet_sections_are_valid_when_switched_on() -> None:
    import tomllib

    from gateway.settings import parse_settings

    text = (Path(__file__).resolve().parent.parent / "config" / "example.toml").read_text()
    fleet_part = text[text.index("# --- A fleet of hubs") :]
    switched_on = "\n".join(
        line[2:] if line.startswith("# ") and ("=" in line or line.startswith("# [")) else line
        for line in fleet_part.splitlines()
    )
    document = tomllib.loads(switched_on)
    document["gateway"] = {"data_dir": "/var/lib/health-gateway"}
    settings = parse_settings(document)
    assert settings.fleet is not None and settings.destinations[0].kind == "mqtt"
