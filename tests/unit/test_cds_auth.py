"""The CDS client JWT verifier on its own: JWKS by URL (a real loopback server), key rotation,
header checks, lifetimes, and a replay cache shared between workers."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serving.cds_auth import CdsAuthError, CdsVerifier, ReplayCache, load_clients
from tests.cds_clients import TestClientKeys

AUD = "https://risk.example.org/cds-services/checkup-risk"


@pytest.fixture(scope="module")
def keys():
    return TestClientKeys()


@pytest.fixture
def verifier(keys, tmp_path):
    return CdsVerifier(load_clients(keys.write_allowlist(tmp_path / "clients.json")), ReplayCache(tmp_path / "jti.db"))


def test_accepts_es384_and_rs384(verifier, keys):
    assert verifier.verify(f"Bearer {keys.token(AUD)}", AUD)["iss"] == keys.iss
    assert verifier.verify(f"Bearer {keys.token(AUD, alg='RS384')}", AUD)["aud"] == AUD


def test_audience_may_be_a_list(verifier, keys):
    import jwt

    token = jwt.encode(
        {
            "iss": keys.iss,
            "aud": ["https://other", AUD],
            "exp": int(time.time()) + 60,
            "iat": int(time.time()),
            "jti": "list-aud",
        },
        keys.ec,
        algorithm="ES384",
        headers={"kid": "ec-1", "typ": "JWT"},
    )
    assert verifier.verify(f"Bearer {token}", AUD)


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda k: k.token(AUD, alg="PS384"), "algorithm"),
        (lambda k: k.token(AUD, alg="RS256"), "algorithm"),
        (lambda k: k.token(AUD, alg="ES384", kid="rsa-1"), "does not match"),
        (lambda k: k.token(AUD, headers={"jku": "https://evil.example/jwks.json"}), "jku"),
        (lambda k: k.token(AUD, exp_in=7200), "too far"),
        (lambda k: k.token(AUD, iat=time.time() + 600), "future"),
        (lambda k: k.token(AUD, drop=("exp",)), "exp"),
        (lambda k: k.token(AUD, drop=("iat",)), "iat"),
        (lambda k: k.token(AUD, headers={"typ": "at+jwt"}), "typ"),
        (lambda k: "not.a.jwt", "malformed"),
    ],
)
def test_refusals(verifier, keys, make, reason):
    with pytest.raises(CdsAuthError, match=reason):
        verifier.verify(f"Bearer {make(keys)}", AUD)


def test_missing_kid_is_refused(verifier, keys):
    import jwt

    token = jwt.encode(
        {"iss": keys.iss, "aud": AUD, "exp": int(time.time()) + 60, "iat": int(time.time()), "jti": "k"},
        keys.ec,
        algorithm="ES384",
        headers={"typ": "JWT"},
    )
    with pytest.raises(CdsAuthError, match="kid"):
        verifier.verify(f"Bearer {token}", AUD)


def test_replay_is_refused_across_workers(keys, tmp_path):
    """Two verifiers (as two worker processes would have) share one replay cache file."""
    clients = load_clients(keys.write_allowlist(tmp_path / "clients.json"))
    one = CdsVerifier(clients, ReplayCache(tmp_path / "jti.db"))
    two = CdsVerifier(clients, ReplayCache(tmp_path / "jti.db"))
    token = keys.token(AUD)
    one.verify(f"Bearer {token}", AUD)
    with pytest.raises(CdsAuthError, match="replay"):
        two.verify(f"Bearer {token}", AUD)


def test_no_allowlist_trusts_nobody(keys, tmp_path):
    verifier = CdsVerifier(load_clients(None), ReplayCache(tmp_path / "jti.db"))
    with pytest.raises(CdsAuthError, match="issuer"):
        verifier.verify(f"Bearer {keys.token(AUD)}", AUD)


def test_malformed_allowlist_is_a_startup_error(tmp_path):
    path = tmp_path / "clients.json"
    path.write_text(json.dumps([{"iss": "x"}]))
    with pytest.raises(ValueError, match="jwks"):
        load_clients(path)


class _Jwks(BaseHTTPRequestHandler):
    document: dict = {}
    hits = 0

    def do_GET(self):  # noqa: N802 (http.server's naming)
        type(self).hits += 1
        body = json.dumps(type(self).document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_jwks_url_with_key_rotation(tmp_path):
    """The issuer publishes its keys at a URL (a real server on loopback); a new kid is fetched."""
    old, new = TestClientKeys(), TestClientKeys()
    _Jwks.document = old.jwks()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/jwks.json"
        verifier = CdsVerifier(
            load_clients(old.write_allowlist(tmp_path / "c.json", jwks_url=url)), ReplayCache(tmp_path / "jti.db")
        )
        verifier.verify(f"Bearer {old.token(AUD, headers={'jku': url})}", AUD)
        verifier.verify(f"Bearer {old.token(AUD)}", AUD)
        assert _Jwks.hits == 1  # cached
        # Rotation: the issuer now signs with a new key under a new kid.
        doc = new.jwks()
        for k in doc["keys"]:
            k["kid"] = "rotated-" + k["kid"]
        _Jwks.document = doc
        verifier.clients[old.iss]._fetched -= 120  # the refetch guard allows one fetch a minute
        verifier.verify(f"Bearer {new.token(AUD, kid='rotated-ec-1')}", AUD)
        assert _Jwks.hits == 2
    finally:
        server.shutdown()
