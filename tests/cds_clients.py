"""A CDS client for tests: its own ES384 and RS384 keys, an allowlist file, and signed JWTs."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://his.example.org"


class TestClientKeys:
    __test__ = False

    def __init__(self, iss: str = ISSUER) -> None:
        self.iss = iss
        self.ec = ec.generate_private_key(ec.SECP384R1())
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict:
        keys = []
        for kid, key in (("ec-1", self.ec), ("rsa-1", self.rsa)):
            algo = jwt.algorithms.ECAlgorithm if kid.startswith("ec") else jwt.algorithms.RSAAlgorithm
            jwk = json.loads(algo.to_jwk(key.public_key()))
            jwk.update(kid=kid, use="sig")
            keys.append(jwk)
        return {"keys": keys}

    def write_allowlist(self, path: Path, jwks_url: str | None = None) -> Path:
        entry = {"iss": self.iss, "jwks_url": jwks_url} if jwks_url else {"iss": self.iss, "jwks": self.jwks()}
        path.write_text(json.dumps([entry]))
        return path

    def token(
        self,
        aud: str,
        alg: str = "ES384",
        kid: str | None = None,
        iss: str | None = None,
        exp_in: float = 300,
        iat: float | None = None,
        jti: str | None = None,
        drop: tuple = (),
        headers: dict | None = None,
    ) -> str:
        now = time.time()
        claims = {
            "iss": iss or self.iss,
            "aud": aud,
            "exp": int(now + exp_in),
            "iat": int(iat or now),
            "jti": jti or str(uuid.uuid4()),
        }
        for name in drop:
            claims.pop(name)
        key = self.ec if alg.startswith("ES") else self.rsa
        head = {"typ": "JWT", "kid": kid or ("ec-1" if alg.startswith("ES") else "rsa-1"), **(headers or {})}
        return jwt.encode(claims, key, algorithm=alg, headers=head)
