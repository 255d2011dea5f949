"""Kafka client security: settings validation, aiokafka options, and the broker's faststream security."""

from __future__ import annotations

import ssl

import certifi
import pytest
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from shared.kafka import broker_security, client_options, make_broker
from shared.settings import CommonSettings

CAFILE = certifi.where()  # any readable PEM bundle will do
SASL = {"kafka_sasl_username": "svc", "kafka_sasl_password": "s3cret"}


def settings(**kwargs) -> CommonSettings:
    return CommonSettings(
        _env_file=None, database_url="postgresql://x/y", kafka_bootstrap_servers="k1:9093,k2:9093", **kwargs
    )


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    s = settings()
    assert client_options(s) == {
        "bootstrap_servers": ["k1:9093", "k2:9093"],
        "security_protocol": "PLAINTEXT",
    }
    security = broker_security(s)
    assert type(security) is BaseSecurity and not security.use_ssl


@pytest.mark.parametrize("cafile", [None, CAFILE])
def test_ssl_gets_a_verifying_context(cafile) -> None:
    options = client_options(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=cafile))
    assert options["security_protocol"] == "SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode is ssl.CERT_REQUIRED and options["ssl_context"].check_hostname
    assert "sasl_mechanism" not in options


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize(
    ("mechanism", "security_class"),
    [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)],
)
def test_sasl_options_and_broker_security_agree(protocol, mechanism, security_class) -> None:
    s = settings(
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_ssl_cafile=CAFILE if protocol == "SASL_SSL" else None,
        **SASL,
    )
    options = client_options(s)
    assert options["security_protocol"] == protocol
    assert options["sasl_mechanism"] == mechanism
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "s3cret")
    assert ("ssl_context" in options) == (protocol == "SASL_SSL")

    broker = make_broker(s, client_id="test")
    security = broker.specification.security
    assert type(security) is security_class
    # What faststream hands aiokafka is what every other client gets.
    parsed = parse_security(security)
    assert isinstance(parsed.pop("ssl_context"), ssl.SSLContext if protocol == "SASL_SSL" else type(None))
    options.pop("ssl_context", None)
    options.pop("bootstrap_servers")
    assert parsed == options


@pytest.mark.parametrize(
    ("protocol", "missing"), [("SASL_SSL", "KAFKA_SASL_PASSWORD"), ("SASL_PLAINTEXT", "KAFKA_SASL_PASSWORD")]
)
def test_sasl_without_a_password_is_refused(protocol, missing) -> None:
    with pytest.raises(ValidationError, match=f"KAFKA_SECURITY_PROTOCOL={protocol} needs {missing}"):
        settings(kafka_security_protocol=protocol, kafka_sasl_mechanism="PLAIN", kafka_sasl_username="svc")


def test_sasl_without_anything_names_every_missing_variable() -> None:
    with pytest.raises(
        ValidationError, match="needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD"
    ):
        settings(kafka_security_protocol="SASL_SSL")


def test_credentials_without_a_sasl_protocol_are_refused() -> None:
    with pytest.raises(
        ValidationError,
        match="KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD given but "
        "KAFKA_SECURITY_PROTOCOL=SSL does not use SASL",
    ):
        settings(kafka_security_protocol="SSL", **SASL)


def test_a_ca_file_without_tls_is_refused() -> None:
    with pytest.raises(ValidationError, match="KAFKA_SSL_CAFILE given but KAFKA_SECURITY_PROTOCOL=PLAINTEXT"):
        settings(kafka_ssl_cafile=CAFILE)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("KAFKA_SASL_MECHANISM", "GSSAPI"),
        ("KAFKA_SSL_CAFILE", "/nonexistent/ca.pem"),
    ],
)
def test_bad_values_from_the_environment_name_the_variable(monkeypatch, variable, value) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable):
        settings(**SASL)


def test_settings_read_from_the_environment_keep_the_password_secret(monkeypatch) -> None:
    for name, value in {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SASL_PASSWORD": "s3cret",
        "KAFKA_SSL_CAFILE": CAFILE,
    }.items():
        monkeypatch.setenv(name, value)
    s = settings()
    assert "s3cret" not in repr(s)
    options = client_options(s)
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert options["sasl_plain_password"] == "s3cret"
