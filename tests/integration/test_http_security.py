"""The HTTP port over real sockets: TLS, basic auth, probes left open, secrets kept out of reprs."""

from __future__ import annotations

import base64
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from monitor.app import Monitor
from monitor.config import load_config
from monitor.io.kafka_clients import client_config


def _get(url: str, *, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None) -> int:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        return urllib.request.urlopen(req, timeout=5, context=context).status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def cert(tmp_path):
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return crt, key


def _monitor(**http) -> Monitor:
    config = load_config(
        environ={},
        overrides={"kafka": {"bootstrap_servers": "127.0.0.1:1"}, "http": {"host": "127.0.0.1", "port": 0, **http}},
    )
    mon = Monitor(config)
    mon.http.start()
    return mon


def test_tls_and_basic_auth_protect_everything_but_the_probes(cert, tmp_path):
    crt, key = cert
    secret = tmp_path / "password"
    secret.write_text("s3cret-pass\n")
    mon = _monitor(
        tls_cert_file=str(crt), tls_key_file=str(key), basic_auth_user="prom", basic_auth_password_file=str(secret)
    )
    try:
        ctx = ssl.create_default_context(cafile=str(crt))
        base = f"https://127.0.0.1:{mon.http.port}"
        assert _get(f"{base}/metrics", context=ctx) == 401
        assert _get(f"{base}/metrics", auth=("prom", "wrong"), context=ctx) == 401
        assert _get(f"{base}/metrics", auth=("prom", "s3cret-pass"), context=ctx) == 200
        assert _get(f"{base}/api/status", auth=("prom", "s3cret-pass"), context=ctx) == 200
        assert _get(f"{base}/healthz", context=ctx) == 200
        assert _get(f"{base}/readyz", context=ctx) == 503  # not connected to any broker
        with pytest.raises(OSError):  # plain HTTP to the TLS port: refused
            urllib.request.urlopen(f"http://127.0.0.1:{mon.http.port}/healthz", timeout=5)
    finally:
        mon.http.stop()


def test_secrets_come_from_files_or_environment_and_stay_out_of_reprs(tmp_path):
    secret = tmp_path / "kafka-password"
    secret.write_text("kafka-secret-value\n")
    config = load_config(
        environ={
            "MONITOR_KAFKA__BOOTSTRAP_SERVERS": "b:9093",
            "MONITOR_KAFKA_PROPERTY__SECURITY_PROTOCOL": "SASL_SSL",
            "MONITOR_KAFKA_PROPERTY__SASL_MECHANISM": "SCRAM-SHA-512",
            "MONITOR_KAFKA_PROPERTY__SASL_USERNAME": "monitor",
            "MONITOR_KAFKA_PROPERTY_FILE__SASL_PASSWORD": str(secret),
            "MONITOR_HTTP__BASIC_AUTH_USER": "prom",
            "MONITOR_HTTP__BASIC_AUTH_PASSWORD": "http-secret-value",
        }
    )
    conf = client_config(config)
    assert conf["sasl.password"] == "kafka-secret-value"
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert "kafka-secret-value" not in repr(config) and "http-secret-value" not in repr(config)


def test_a_missing_secret_file_fails_at_start_naming_the_field(tmp_path):
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(environ={"MONITOR_KAFKA_PROPERTY_FILE__SASL_PASSWORD": str(tmp_path / "nope")})
    assert info.value.field == "kafka.property_files.sasl.password"
