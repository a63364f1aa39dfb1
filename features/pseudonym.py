"""The deployment's secret and the pseudonyms made with it. The secret signs report links, keys the
pseudonyms of the audit trail and the prediction log (the monitor makes the same pseudonyms to join
outcomes to predictions), and seals the audit chain.

`CHECKUP_RISK_SECRET_KEY` when set (the same value on every instance behind one URL); otherwise one
is created on first use and kept in CHECKUP_RISK_HOME/secret_key (mode 600). Each use gets its own
key derived from it, so a key leaked from one use says nothing about another.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def secret_file(home: Path) -> Path:
    return home / "secret_key"


def load_secret(home: Path, configured: str | None) -> bytes:
    """The configured secret, or the one kept under the home (created when absent)."""
    if configured:
        return configured.encode()
    path = secret_file(home)
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker made it first: read theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip().encode()


def derive(secret: bytes, purpose: str) -> bytes:
    """The key for one purpose ("report-link", "pseudonym", "audit")."""
    return hmac.new(secret, f"checkup-risk/{purpose}".encode(), hashlib.sha256).digest()


def pseudonym(key: bytes, person_id: str) -> str:
    """A keyed, stable stand-in for a person id: the same person gets the same key under one secret,
    and without the secret it cannot be traced back or recomputed from a guessed id."""
    return hmac.new(key, str(person_id).encode(), hashlib.sha256).hexdigest()[:32]
