"""The clients over TLS against a real ``ledgerd --tls-cert/--tls-key [--tls-client-ca]``, with
certificates from ``scripts/gen-certs`` (openssl): a session, pipelining, the asyncio client,
a CA that did not sign the server, and mutual TLS mapping a certificate to its client id."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from conftest import REPO, SECRETS, Ledgerd, credentials
from ledger_client import (
    AccountKind,
    AsyncClient,
    AuthFailed,
    Client,
    Command,
    DefineCurrency,
    Deposit,
    HandshakeError,
    OpenAccount,
    Options,
    Transfer,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    subprocess.run([str(REPO / "scripts" / "gen-certs"), str(directory), "admin", "writer"], check=True)
    return directory


def start(ledgerd_bin: Path, tmp_path: Path, pki: Path, mutual: bool) -> Ledgerd:
    data = tmp_path / "data"
    data.mkdir()
    path = data / "credentials"
    path.write_text("".join(f"{cid} {role} {secret}\n" for cid, (role, secret) in SECRETS.items()))
    path.chmod(0o600)
    flags = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
    if mutual:
        flags += ["--tls-client-ca", str(pki / "ca.pem")]
    return Ledgerd(ledgerd_bin, data, flags)


@pytest.fixture
def tls_server(ledgerd_bin: Path, tmp_path: Path, pki: Path) -> Iterator[Ledgerd]:
    server = start(ledgerd_bin, tmp_path, pki, mutual=False)
    yield server
    server.kill9()


@pytest.fixture
def mtls_server(ledgerd_bin: Path, tmp_path: Path, pki: Path) -> Iterator[Ledgerd]:
    server = start(ledgerd_bin, tmp_path, pki, mutual=True)
    yield server
    server.kill9()


def context(ca: Path, client: Path | None = None) -> ssl.SSLContext:
    """Trusts only ``ca``; presents ``client``'s certificate (``client-ID``) if given."""
    tls = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        tls.load_cert_chain(str(client.with_suffix(".pem")), str(client.with_suffix(".key")))
    return tls


def test_a_session_and_pipelining_over_tls(tls_server: Ledgerd, pki: Path) -> None:
    # A generous deadline: a fresh ledgerd on a loaded machine can take seconds for its first
    # journal rounds, and this test is about TLS, not latency.
    options = Options(ssl_context=context(pki / "ca.pem"), request_timeout_ms=20_000)
    with Client.connect(tls_server.address, credentials("admin"), options) as admin:
        setup: List[Tuple[int, Command]] = [
            (1, DefineCurrency("USD", 2)),
            (2, OpenAccount("alice", 1, "USD", AccountKind.USER)),
            (3, OpenAccount("bob", 2, "USD", AccountKind.USER)),
            (4, OpenAccount("bank", 0, "USD", AccountKind.SYSTEM)),
            (5, Deposit("alice", "bank", Decimal("100.00"))),
        ]
        assert all(outcome.ok for outcome in admin.submit(setup))
        futures = [admin.send_submit([(1000 + n, Transfer("alice", "bob", Decimal("0.01")))]) for n in range(500)]
        assert all(future.result().pop().ok for future in futures)
        bob = admin.account("bob")
        assert bob is not None and bob.available_minor == 500
    # The server name defaults to the host; a name the certificate lacks is refused.
    options = Options(ssl_context=context(pki / "ca.pem"), server_hostname="localhost")
    with Client.connect(tls_server.address, credentials("reader"), options) as reader:
        alice = reader.account("alice")
        assert alice is not None and alice.available_minor == 10_000 - 500
    with pytest.raises(ssl.SSLCertVerificationError):
        Client.connect(tls_server.address, credentials("reader"), Options(ssl_context=context(pki / "ca.pem"), server_hostname="ledger.example"))


def test_the_asyncio_client_over_tls(tls_server: Ledgerd, pki: Path) -> None:
    async def run() -> List[bool]:
        options = Options(ssl_context=context(pki / "ca.pem"))
        client = await AsyncClient.connect(tls_server.address, credentials("admin"), options)
        try:
            outcomes = await asyncio.gather(*[client.submit([(n, DefineCurrency(f"C{n:02}", 2))]) for n in range(1, 21)])
            return [outcome.ok for [outcome] in outcomes]
        finally:
            await client.close()

    assert asyncio.run(run()) == [True] * 20


def test_a_ca_that_did_not_sign_the_server_is_refused(tls_server: Ledgerd, pki: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run([str(REPO / "scripts" / "gen-certs"), str(other)], check=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        Client.connect(tls_server.address, credentials("admin"), Options(ssl_context=context(other / "ca.pem")))


def test_mutual_tls_maps_the_certificate_to_its_client_id(mtls_server: Ledgerd, pki: Path) -> None:
    own = Options(ssl_context=context(pki / "ca.pem", pki / "client-writer"))
    with Client.connect(mtls_server.address, credentials("writer"), own) as writer:
        writer.ping()
    # The admin's certificate does not make the writer an admin, nor the writer's the admin.
    with pytest.raises(AuthFailed, match="subject CN is not this client id"):
        Client.connect(mtls_server.address, credentials("admin"), own)
    # Without a certificate the server ends the handshake (TLS 1.3: an alert on the first read).
    with pytest.raises(HandshakeError, match="CERTIFICATE_REQUIRED"):
        Client.connect(mtls_server.address, credentials("admin"), Options(ssl_context=context(pki / "ca.pem")))
