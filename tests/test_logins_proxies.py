"""Logins by the peer's challenge, proxies tried in order and named in errors, and the TLS settings applied."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from bitscli.model import AuthScheme, Job, JobType, ProxyUsage, SecurityFlags
from bitscli.transfer import job_request
from bitscli.transfer.auth import Login, challenges
from bitscli.transfer.classify import TransferError
from bitscli.transfer.client import Client
from bitscli.transfer.http import download
from bitscli.transfer.types import Download

from .faultserver import FaultServer
from .test_http_engine import Recorder
from .wirepeers import ForwardProxy, LoginServer

DATA = bytes(range(256)) * 300
BOTH = (Login(AuthScheme.BASIC, "alice", "pw-basic"), Login(AuthScheme.DIGEST, "alice", "pw-digest"))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(client: Client, url: str, part: Path, **options: object) -> None:
    download(client, Download(url=url, part=str(part), timeout=(5, 5), request_options=options), Recorder())


def test_challenges_are_parsed_whatever_their_parameters() -> None:
    offered = challenges(['Digest realm="a, b", nonce="n", qop="auth", Basic realm="x"', "NTLM", "Bearer x=1"])
    assert offered[AuthScheme.BASIC] == 'realm="x"'
    assert offered[AuthScheme.DIGEST].startswith('realm="a, b"')
    assert AuthScheme.NTLM in offered


@pytest.mark.parametrize(("asked", "password"), [("Basic", "pw-basic"), ("Digest", "pw-digest")])
def test_the_scheme_follows_the_servers_challenge(client: Client, tmp_path: Path, asked: str, password: str) -> None:
    """Issue 12, item 10: BASIC and DIGEST both stored; the server's challenge picks, not the last one stored."""
    server = LoginServer((asked,), "alice", password, DATA)
    try:
        fetch(client, server.url(), tmp_path / "p", logins=BOTH)
        fetch(client, server.url(), tmp_path / "q", logins=BOTH)  # the next file: the scheme is remembered
    finally:
        server.close()
    assert sha((tmp_path / "p").read_bytes()) == sha((tmp_path / "q").read_bytes()) == sha(DATA)
    assert server.seen[-1]["Authorization"].startswith(asked)


def test_ntlm_is_a_handshake_on_one_connection(client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = tmp_path / "ntlm-users"
    users.write_text(":alice:pw-ntlm\n")
    monkeypatch.setenv("NTLM_USER_FILE", str(users))
    server = LoginServer(("NTLM",), "alice", "pw-ntlm", DATA)
    try:
        fetch(client, server.url(), tmp_path / "p", logins=(Login(AuthScheme.NTLM, "alice", "pw-ntlm"),))
    finally:
        server.close()
    assert sha((tmp_path / "p").read_bytes()) == sha(DATA)
    assert [h.get("Authorization", "")[:5] for h in server.seen] == ["", "NTLM ", "NTLM "]


def test_a_login_whose_package_is_missing_says_which_to_install(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "spnego", None)  # as on a machine without the extra: the import fails
    server = LoginServer(("NTLM",), "alice", "pw-ntlm", DATA)
    try:
        with pytest.raises(TransferError) as caught:
            fetch(client, server.url(), tmp_path / "p", logins=(Login(AuthScheme.NTLM, "alice", "pw-ntlm"),))
    finally:
        server.close()
    assert "bitscli[ntlm]" in caught.value.message
    assert not caught.value.transient
    assert caught.value.code == 0x80200028  # BG_E_INVALID_AUTH_SCHEME


def test_a_digest_nonce_the_server_dropped_is_answered_again(client: Client, tmp_path: Path) -> None:
    """A server that renews its nonce without saying stale=true: the next file's remembered digest is refused
    once, answered with the new challenge, and the file comes."""
    server = LoginServer(("Digest",), "alice", "pw-digest", DATA)
    try:
        fetch(client, server.url(), tmp_path / "p", logins=BOTH)
        server.NONCE = "a-new-nonce"  # type: ignore[misc]
        fetch(client, server.url(), tmp_path / "q", logins=BOTH)
    finally:
        server.close()
    assert sha((tmp_path / "q").read_bytes()) == sha(DATA)


def test_a_refused_login_is_reported_not_repeated(client: Client, tmp_path: Path) -> None:
    server = LoginServer(("Basic",), "alice", "right", DATA)
    try:
        with pytest.raises(TransferError) as caught:
            fetch(client, server.url(), tmp_path / "p", logins=(Login(AuthScheme.BASIC, "alice", "wrong"),))
    finally:
        server.close()
    assert caught.value.code == 0x80190191  # BG_E_HTTP_ERROR_401
    assert len(server.seen) <= 2


@pytest.fixture
def origin() -> Iterator[FaultServer]:
    server = FaultServer()
    server.put("/f", DATA)
    yield server
    server.close()


def test_plain_http_goes_through_the_proxy_with_its_login(client: Client, origin: FaultServer,
                                                          tmp_path: Path) -> None:  # fmt: skip
    """Issue 12, item 13: proxy credentials work (here Basic, asked for with a 407)."""
    proxy = ForwardProxy(login=("bob", "pw-proxy"))
    try:
        logins = (Login(AuthScheme.BASIC, "bob", "pw-proxy"),)
        fetch(client, origin.url("/f"), tmp_path / "p", proxies=(proxy.address,), proxy_logins=logins)
    finally:
        proxy.close()
    assert sha((tmp_path / "p").read_bytes()) == sha(DATA)
    assert proxy.seen[-1].target == origin.url("/f")  # absolute-form
    assert "Proxy-Authorization" not in origin.gets("/f")[-1].headers  # the proxy's login stays with the proxy


def _https(tmp_path: Path) -> tuple[FaultServer, Path]:
    """An HTTPS server with a certificate from a CA made for the test, and that CA's PEM file."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = FaultServer(tls=context)
    server.put("/f", DATA)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return server, bundle


def test_https_goes_through_a_connect_tunnel(client: Client, tmp_path: Path) -> None:
    server, bundle = _https(tmp_path)
    proxy = ForwardProxy(login=("bob", "pw-proxy"))
    try:
        logins = (Login(AuthScheme.BASIC, "bob", "pw-proxy"),)
        fetch(client, server.url("/f"), tmp_path / "p", proxies=(proxy.address,), proxy_logins=logins,
              verify=str(bundle))  # fmt: skip
    finally:
        proxy.close()
        server.close()
    assert sha((tmp_path / "p").read_bytes()) == sha(DATA)
    assert [s.method for s in proxy.seen][-1] == "CONNECT"
    assert proxy.seen[-1].target == f"127.0.0.1:{server.port}"


def test_the_proxies_of_the_list_are_tried_in_order(client: Client, origin: FaultServer, tmp_path: Path) -> None:
    """Issue 12, item 13: OVERRIDE used only the first proxy; BITS tries them in order."""
    proxy = ForwardProxy()
    try:
        fetch(client, origin.url("/f"), tmp_path / "p", proxies=("127.0.0.1:1", proxy.address))
    finally:
        proxy.close()
    assert sha((tmp_path / "p").read_bytes()) == sha(DATA)


def test_an_unreachable_proxy_is_named_in_the_error(client: Client, origin: FaultServer, tmp_path: Path) -> None:
    with pytest.raises(TransferError) as caught:
        fetch(client, origin.url("/f"), tmp_path / "p", proxies=("127.0.0.1:1",))
    assert "proxy 127.0.0.1:1" in caught.value.message
    assert caught.value.transient


def _job(**changes: object) -> Job:
    base = Job(id="{00000000-0000-0000-0000-000000000000}", display_name="j", type=JobType.DOWNLOAD, owner="me",
               creation_time=0.0, modification_time=0.0)  # fmt: skip
    return Job(**{**base.__dict__, **changes})


def test_override_proxies_and_their_bypass_list() -> None:
    job = _job(proxy_usage=ProxyUsage.OVERRIDE, proxy_list="p1:3128,p2:3128", proxy_bypass_list="*.lan <local>")
    assert job_request.proxies_for(job, "http://mirror.example.org/f") == ("p1:3128", "p2:3128")
    assert job_request.proxies_for(job, "http://nas.lan/f") == ()
    assert job_request.proxies_for(job, "http://printer/f") == ()
    assert job_request.proxies_for(_job(proxy_usage=ProxyUsage.NO_PROXY), "http://x.example/f") == ()


def test_autodetect_is_refused_clearly(cli, ok) -> None:
    """Issue 12, item 13: never silently PRECONFIG."""
    job = ok("create", "--raw", "j").stdout
    result = cli("setproxysettings", job, "AUTODETECT")
    assert result.exit_code == 9
    assert "AUTODETECT" in result.stderr
    with pytest.raises(TransferError) as caught:
        job_request.proxies_for(_job(proxy_usage=ProxyUsage.AUTODETECT), "http://x.example/f")
    assert not caught.value.transient


@pytest.fixture
def untrusted() -> Iterator[FaultServer]:
    """HTTPS with a certificate no trust store knows (a CA made for the test)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost").configure_cert(context)  # and a name that is not 127.0.0.1
    server = FaultServer(tls=context)
    server.put("/f", DATA)
    yield server
    server.close()


@pytest.mark.parametrize(
    ("flags", "works"),
    [
        (0, False),
        (SecurityFlags.IGNORE_CERT_CN_INVALID, False),  # the name may be wrong, but the CA is still unknown
        (SecurityFlags.IGNORE_UNKNOWN_CA, True),  # OpenSSL cannot skip one check: all are off, the name's too
    ],
)
def test_the_security_flags_that_ignore_certificate_errors_are_applied(
    untrusted: FaultServer, tmp_path: Path, flags: int, works: bool
) -> None:
    """Issue 12, item 11: 0x2, 0x4, 0x8 and 0x10 were stored but never applied."""
    options = job_request.request_options(_job(security_flags=int(flags)), untrusted.url("/f"))
    client = Client()
    try:
        if works:
            fetch(client, untrusted.url("/f"), tmp_path / "p", **options)
            assert sha((tmp_path / "p").read_bytes()) == sha(DATA)
        else:
            with pytest.raises(TransferError) as caught:
                fetch(client, untrusted.url("/f"), tmp_path / "p", **options)
            assert caught.value.code == 0x80072F8F
    finally:
        client.close()


def test_ssl_cert_file_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12, item 12: the standard variable, not only requests' own."""
    server, bundle = _https(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = Client()
    try:
        options = job_request.request_options(_job(), server.url("/f"))
        fetch(client, server.url("/f"), tmp_path / "p", **options)
    finally:
        client.close()
        server.close()
    assert sha((tmp_path / "p").read_bytes()) == sha(DATA)


@pytest.fixture
def mutual(tmp_path: Path) -> Iterator[tuple[FaultServer, Path, Path, Path]]:
    """HTTPS that asks for a client certificate from its own CA; (server, CA file, client cert, client key)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    server = FaultServer(tls=context)
    server.put("/f", DATA)
    client_cert = ca.issue_cert("bitscli-client@example.org")
    paths = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"
    ca.cert_pem.write_to_path(str(paths[0]))
    client_cert.cert_chain_pems[0].write_to_path(str(paths[1]))
    client_cert.private_key_pem.write_to_path(str(paths[2]))
    yield server, *paths
    server.close()


def test_a_jobs_ca_bundle_and_client_certificate_are_used(cli, ok, mutual, tmp_path: Path) -> None:
    """Issue 12, item 12: the Linux stand-in for the certificate-store switches."""
    server, ca, cert, key = mutual
    job = ok("create", "--raw", "j").stdout
    ok("setcabundle", job, str(ca))
    ok("setclientcertificate", job, str(cert), str(key))
    assert ok("getcabundle", job).stdout == f"{ca}\n"
    assert ok("getclientcertificate", job).stdout == f"{cert}\n"
    from bitscli.service.context import open_context
    from bitscli.service.jobs import get_job

    found = get_job(open_context(), job)
    client = Client()
    try:
        fetch(client, server.url("/f"), tmp_path / "p", **job_request.request_options(found, server.url("/f")))
        assert sha((tmp_path / "p").read_bytes()) == sha(DATA)
        ok("setclientcertificate", job, "NULL")
        without = job_request.request_options(get_job(open_context(), job), server.url("/f"))
        with pytest.raises(TransferError):
            fetch(Client(), server.url("/f"), tmp_path / "q", **without)  # the server wants a certificate
    finally:
        client.close()


def test_a_client_certificate_is_checked_when_it_is_set(cli, ok, mutual, tmp_path: Path) -> None:
    _, ca, cert, key = mutual
    job = ok("create", "--raw", "j").stdout
    other = trustme.CA().issue_cert("someone-else@example.org")
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n"
                         "-----END ENCRYPTED PRIVATE KEY-----\n")  # fmt: skip
    for argv in ([str(cert), str(tmp_path / "other.key")], [str(cert), str(encrypted)], [str(tmp_path / "none.pem")],
                 ["relative.pem"], [str(ca)]):  # fmt: skip
        result = cli("setclientcertificate", job, *argv)
        assert result.exit_code == 2, argv
        assert result.stderr.startswith("error: "), argv
    assert cli("setcabundle", job, str(key)).exit_code == 2  # a key is no CA certificate
    assert ok("getclientcertificate", job).stdout == "NULL\n"
