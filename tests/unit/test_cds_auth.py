"""The CDS client JWT verifier on its own: JWKS by URL (a real loopback server), key rotation,
header checks, lifetimes, and a replay cache shared between workers."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.cds_auth import CdsAuthError, CdsVerifier, ReplayCache, load_clients
from serving.state_db import StateDB
from tests.cds_clients import TestClientKeys

AUD = "https://risk.example.org/cds-services/checkup-risk"


@pytest.fixture(scope="module")
def keys():
    return TestClientKeys()


@pytest.fixture
def verifier(keys, tmp_path):
    return CdsVerifier(load_clients(keys.write_allowlist(tmp_path / "clients.json")), _replay(tmp_path))


def _replay(tmp_path) -> ReplayCache:
    """A replay cache on its own SQLite state file (two caches on one file are two workers)."""
    state = StateDB(f"sqlite:///{tmp_path / 'state.sqlite'}")
    state.migrate()
    return ReplayCache(state)


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
        (lambda k: k.token(AUD, exp_in=7200), "lifetime"),
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
    one = CdsVerifier(clients, _replay(tmp_path))
    two = CdsVerifier(clients, _replay(tmp_path))
    token = keys.token(AUD)
    one.verify(f"Bearer {token}", AUD)
    with pytest.raises(CdsAuthError, match="replay"):
        two.verify(f"Bearer {token}", AUD)


def test_no_allowlist_trusts_nobody(keys, tmp_path):
    verifier = CdsVerifier(load_clients(None), _replay(tmp_path))
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
        verifier = CdsVerifier(load_clients(old.write_allowlist(tmp_path / "c.json", jwks_url=url)), _replay(tmp_path))
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


# Hardening (issue 13): wrong types are refused cleanly, before any key lookup; a dead key server
# cannot stall every call; the audience is never chosen by a bare Host header.


def _unsigned(header: dict, claims: dict) -> str:
    """A token with this exact header and these claims, signed with nothing (shape checks come first)."""
    import base64

    def part(value) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.c2ln"


def _claims(keys, **over):
    now = int(time.time())
    return {"iss": keys.iss, "aud": AUD, "exp": now + 60, "iat": now, "jti": "j", **over}


@pytest.mark.parametrize(
    "header,claims,reason",
    [
        ({"alg": "ES384", "kid": "ec-1", "typ": 5}, {}, "typ"),
        ({"alg": "ES384", "kid": "ec-1", "typ": None}, {}, "typ"),
        ({"alg": ["ES384"], "kid": "ec-1"}, {}, "algorithm"),
        ({"alg": "ES384", "kid": {"a": 1}}, {}, "kid|malformed"),
        ({"alg": "ES384", "kid": "ec-1", "typ": "JWT"}, {"iss": ["https://his.example.org"]}, "issuer"),
        ({"alg": "ES384", "kid": "ec-1", "typ": "JWT"}, {"iss": {"a": 1}}, "issuer"),
        ({"alg": "ES384", "kid": "ec-1", "typ": "JWT"}, {"exp": "9999999999"}, "exp"),
        ({"alg": "ES384", "kid": "ec-1", "typ": "JWT"}, {"exp": True}, "exp"),
        ({"alg": "ES384", "kid": "ec-1", "typ": "JWT"}, {"iat": 1e300}, "iat"),
        ({"alg": "ES384", "kid": "ec-1", "typ": "JWT"}, {"aud": [AUD, 5]}, "aud"),
        ({"alg": "ES384", "kid": "ec-1", "typ": "JWT"}, {"jti": 7}, "jti"),
    ],
)
def test_wrong_types_are_refused_cleanly(verifier, keys, header, claims, reason):
    with pytest.raises(CdsAuthError, match=reason):
        verifier.verify(f"Bearer {_unsigned(header, _claims(keys, **claims))}", AUD)


def test_signed_exp_as_string_is_refused(verifier, keys):
    import jwt

    claims = _claims(keys, exp=str(int(time.time()) + 60))
    token = jwt.encode(claims, keys.ec, algorithm="ES384", headers={"kid": "ec-1", "typ": "JWT"})
    with pytest.raises(CdsAuthError, match="exp"):
        verifier.verify(f"Bearer {token}", AUD)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.fixed_dictionaries({}, optional={k: _json_values for k in ("alg", "typ", "kid", "jku", "crit")}),
    claims=st.fixed_dictionaries({}, optional={k: _json_values for k in ("iss", "aud", "exp", "iat", "nbf", "jti")}),
    keep=st.fixed_dictionaries({}, optional={"alg": st.just("ES384"), "kid": st.just("ec-1"), "iss": st.just(1)}),
)
def test_fuzzed_headers_and_claims_are_only_refused(verifier, keys, header, claims, keep):
    """Any JSON value in any header field or claim: a clean CdsAuthError, never another exception."""
    header = {**header, **{k: v for k, v in keep.items() if k != "iss"}}
    if "iss" in keep:
        claims = {**claims, "iss": keys.iss}
    with pytest.raises(CdsAuthError):
        verifier.verify(f"Bearer {_unsigned(header, claims)}", AUD)


def test_a_silent_key_server_stalls_one_call_then_none(keys, tmp_path, monkeypatch):
    """A JWK Set server that accepts connections and never answers: the first call waits for the
    deadline, the next is refused at once (backoff), and a malformed token never fetches at all."""
    import socket

    from serving import cds_auth

    monkeypatch.setattr(cds_auth, "JWKS_TIMEOUT_S", 0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/jwks.json"
        clients = load_clients(keys.write_allowlist(tmp_path / "c.json", jwks_url=url))
        verifier = CdsVerifier(clients, _replay(tmp_path))
        fetches = []
        real = cds_auth._fetch
        monkeypatch.setattr(cds_auth, "_fetch", lambda u, *a: fetches.append(u) or real(u, 0.5))

        bad = _unsigned({"alg": "ES384", "kid": "any", "typ": 5}, _claims(keys))
        with pytest.raises(CdsAuthError, match="typ"):
            verifier.verify(f"Bearer {bad}", AUD)
        assert fetches == []  # the shape check comes before any fetch

        junk = _unsigned({"alg": "ES384", "kid": "any", "typ": "JWT"}, _claims(keys))
        started = time.monotonic()
        with pytest.raises(CdsAuthError, match="JWK Set"):
            verifier.verify(f"Bearer {junk}", AUD)
        first = time.monotonic() - started
        assert 0.4 < first < 2.0

        started = time.monotonic()
        with pytest.raises(CdsAuthError, match="JWK Set"):
            verifier.verify(f"Bearer {keys.token(AUD)}", AUD)
        assert time.monotonic() - started < 0.2
        assert len(fetches) == 1
    finally:
        silent.close()


def _request(host: str, server=("127.0.0.1", 3000)):
    from starlette.requests import Request

    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/cds-services/checkup-risk",
        "raw_path": b"/cds-services/checkup-risk",
        "query_string": b"",
        "headers": [(b"host", host.encode())],
        "server": server,
    }
    return Request(scope)


def test_audience_is_never_a_bare_host_header():
    from types import SimpleNamespace

    from serving.cds import _audience, _base

    svc = SimpleNamespace(public_url=None, accepted_hosts=("localhost", "risk.internal:8443"))
    path = "/cds-services/checkup-risk"
    assert _audience(_request("localhost:3000"), svc) == "http://localhost:3000" + path
    assert _audience(_request("127.0.0.1:3000"), svc) == "http://127.0.0.1:3000" + path  # the address reached
    assert _base(_request("risk.internal:8443"), svc) == "http://risk.internal:8443"
    for host in ("evil.example", "risk.internal:9999", "127.0.0.1:3001"):
        with pytest.raises(CdsAuthError, match="host"):
            _audience(_request(host), svc)
    svc.public_url = "https://risk.example.org"
    assert _audience(_request("evil.example"), svc) == "https://risk.example.org" + path


@pytest.mark.parametrize("jti", ["x" * 256, "a\x00b", "line\nbreak"])
def test_a_jti_that_cannot_be_kept_is_refused_before_the_store(tmp_path, jti):
    from serving.cds_auth import _check_shape

    claims = {"iss": "https://his.example.org", "aud": "x", "exp": 1, "iat": 1, "jti": jti}
    with pytest.raises(CdsAuthError, match="jti"):
        _check_shape({"alg": "ES384", "kid": "k", "typ": "JWT"}, claims)


def test_what_the_readme_requires_of_a_token_and_what_rfc_9110_allows(verifier, keys, tmp_path):
    import jwt

    # typ JWT is required, not assumed.
    untyped = keys.token(AUD, headers={"typ": None})
    assert "typ" not in jwt.get_unverified_header(untyped)
    with pytest.raises(CdsAuthError, match="typ JWT is required"):
        verifier.verify(f"Bearer {untyped}", AUD)
    # A lifetime over an hour is refused even when exp is near (issued two hours ago).
    with pytest.raises(CdsAuthError, match="lifetime is over an hour"):
        verifier.verify(f"Bearer {keys.token(AUD, exp_in=60, iat=time.time() - 7200)}", AUD)
    # The scheme in any case, and more than one space before the token.
    assert verifier.verify(f"bearer  {keys.token(AUD)}", AUD)["iss"] == keys.iss


def test_a_key_that_cannot_be_read_is_skipped_not_a_failure(keys, tmp_path):
    import json

    jwks = keys.jwks()
    broken = dict(jwks["keys"][0], kid="broken")
    del broken["y"]  # an EC key without its y coordinate
    x5c_only = {"kty": "RSA", "kid": "x5c-only", "x5c": ["bm90IGEgY2VydA=="]}
    path = tmp_path / "clients.json"
    path.write_text(json.dumps([{"iss": keys.iss, "jwks": {"keys": [broken, x5c_only, *jwks["keys"]]}}]))
    verifier = CdsVerifier(load_clients(path), _replay(tmp_path))
    assert verifier.verify(f"Bearer {keys.token(AUD)}", AUD)["iss"] == keys.iss
    assert verifier.verify(f"Bearer {keys.token(AUD, alg='RS384')}", AUD)["iss"] == keys.iss
    with pytest.raises(CdsAuthError):
        verifier.verify(f"Bearer {keys.token(AUD, kid='broken')}", AUD)
