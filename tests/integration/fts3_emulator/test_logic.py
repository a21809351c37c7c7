"""The emulator's pure logic: state derivation, ids, checksums, DNs, delegation checks, config."""

from __future__ import annotations

import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fts3_emulator.config import load_settings
from fts3_emulator.delegation import DelegationError, accept_credential, new_request
from fts3_emulator.identity import end_entity_dn, name_to_oneline, strip_proxy_cns
from fts3_emulator.states import (
    delegation_id_for,
    derive_job_state,
    deterministic_job_id,
    max_attempts,
    parse_user_checksum,
    verify_checksum_mode,
)
from tests.integration.fts3_emulator.proxies import sign_proxy


@pytest.mark.parametrize(
    ("files", "job"),
    [
        (["FINISHED"] * 3, "FINISHED"),
        (["FINISHED", "FAILED"], "FINISHEDDIRTY"),
        (["FINISHED", "FAILED", "CANCELED"], "FINISHEDDIRTY"),
        (["FAILED", "CANCELED"], "FAILED"),
        (["FAILED"], "FAILED"),
        (["CANCELED", "CANCELED"], "CANCELED"),
        (["FINISHED", "CANCELED"], "CANCELED"),
        (["SUBMITTED", "SUBMITTED"], "SUBMITTED"),
        (["STAGING", "SUBMITTED"], "STAGING"),
        (["STAGING", "ACTIVE"], "ACTIVE"),
        (["ACTIVE", "SUBMITTED"], "ACTIVE"),
        (["ARCHIVING", "FINISHED"], "ARCHIVING"),
        (["ARCHIVING", "ARCHIVING"], "ARCHIVING"),
        (["ARCHIVING", "SUBMITTED"], "ACTIVE"),
        (["FINISHED", "SUBMITTED"], "ACTIVE"),
    ],
)
def test_job_state_is_derived_from_file_states_as_fts3_does(files, job):
    assert derive_job_state(files) == job


def test_deterministic_id_is_uuid5_of_uuid5_of_the_fts_base_id():
    base = uuid.UUID("01874efb-4735-4595-bc9c-591aef8240c9")
    assert deterministic_job_id("vo1", "sid-1") == str(uuid.uuid5(uuid.uuid5(base, "vo1"), "sid-1"))
    assert deterministic_job_id("vo1", "sid-1") != deterministic_job_id("vo2", "sid-1")


def test_delegation_id_is_sha1_of_dn_and_fqans():
    import hashlib

    dn = "/C=UK/O=Org/CN=Someone"
    assert delegation_id_for(dn) == hashlib.sha1(dn.encode()).hexdigest()[:16]
    assert (
        delegation_id_for(dn, ["/vo/Role=x"])
        == hashlib.sha1((dn + "/vo/Role=x").encode()).hexdigest()[:16]
    )


@pytest.mark.parametrize(
    ("given", "parsed"),
    [
        ("adler32:0a1b2c3d", ("adler32", "0a1b2c3d")),
        ("ADLER32:0A1B2C3D", ("adler32", "0a1b2c3d")),
        ("ADLER32:a1b2c3d", ("adler32", "0a1b2c3d")),
        ("ADLER32", ("adler32", None)),
        (None, ("adler32", None)),
    ],
)
def test_user_checksums_are_accepted_as_sent(given, parsed):
    assert parse_user_checksum(given) == parsed


@pytest.mark.parametrize(
    ("value", "given", "mode"),
    [
        (True, False, "b"),
        (False, True, "t"),
        (False, False, "n"),
        ("both", False, "b"),
        ("source", True, "s"),
        ("target", True, "t"),
        ("none", True, "n"),
        (None, False, "n"),
    ],
)
def test_verify_checksum_keeps_the_first_letter(value, given, mode):
    assert verify_checksum_mode(value, given) == mode


def test_retry_counts():
    assert max_attempts(-1) == 1
    assert max_attempts(0) == 1
    assert max_attempts(0, server_default=2) == 3
    assert max_attempts(3) == 4


def test_dn_is_openssl_oneline_and_proxy_cns_are_stripped(fts3_certs):
    cert = x509.load_pem_x509_certificate(fts3_certs.user_cert.read_bytes())
    key = serialization.load_pem_private_key(fts3_certs.user_key.read_bytes(), password=None)
    dn = name_to_oneline(cert.subject)
    assert dn.startswith("/C=UK/O=Datastore/OU=Users/CN=")
    proxy_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    proxy = sign_proxy(cert, key, proxy_key.public_key())
    assert name_to_oneline(proxy.subject).startswith(dn + "/CN=")
    assert end_entity_dn(proxy) == dn
    assert end_entity_dn(cert) == dn
    assert strip_proxy_cns(dn + "/CN=123/CN=proxy") == dn


def test_delegated_proxy_must_match_the_request_key(fts3_certs):
    cert = x509.load_pem_x509_certificate(fts3_certs.user_cert.read_bytes())
    key = serialization.load_pem_private_key(fts3_certs.user_key.read_bytes(), password=None)
    csr_pem, request_key_pem = new_request(2048)
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    chain = (
        sign_proxy(cert, key, csr.public_key()).public_bytes(serialization.Encoding.PEM)
        + fts3_certs.user_cert.read_bytes()
    ).decode()

    credential = accept_credential(chain, request_key_pem)

    assert credential.proxy_pem.count("BEGIN CERTIFICATE") == 2
    assert "PRIVATE KEY" in credential.proxy_pem
    assert credential.termination_time <= cert.not_valid_after_utc.replace(tzinfo=None)
    _, other_key_pem = new_request(1024)
    with pytest.raises(DelegationError, match="private key"):
        accept_credential(chain, other_key_pem)
    with pytest.raises(DelegationError, match="chain"):
        accept_credential(
            chain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n",
            request_key_pem,
        )


def test_settings_layering_yaml_env_cli(tmp_path):
    config = tmp_path / "e.yaml"
    config.write_text("port: 9000\nconcurrency: 2\nfaults:\n  http_error_rate: 0.1\n")
    settings = load_settings(
        ["--config", str(config), "--concurrency", "7", "--token", "tok=/CN=x"],
        environ={
            "FTS3_EMULATOR_PORT": "9100",
            "FTS3_EMULATOR_FAULTS__TRANSFER_FAILURE_RATE": "0.25",
        },
    )
    assert settings.port == 9100
    assert settings.concurrency == 7
    assert settings.faults.http_error_rate == 0.1
    assert settings.faults.transfer_failure_rate == 0.25
    assert settings.tokens["tok"]["user_dn"] == "/CN=x"
