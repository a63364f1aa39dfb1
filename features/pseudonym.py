"""The deployment's secret and the pseudonyms made with it. The secret signs report links, keys the
pseudonyms of the audit trail and the prediction log (the monitor makes the same pseudonyms to join
outcomes to predictions), and seals the audit chain.

`CHECKUP_RISK_SECRET_KEY` when set (the same value on every instance behind one URL); otherwise one
is created on first use and kept in CHECKUP_RISK_HOME/secret_key (mode 600). Each use gets its own
key derived from it, so a key leaked from one use says nothing about another.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path


def secret_file(home: Path) -> Path:
    return home / "secret_key"


class SecretMissing(LookupError):
    """No secret is configured or kept, and the caller must not make one (a check would then fail
    against a new key instead of the one the entries were made with)."""


def load_secret(home: Path, configured: str | None, create: bool = True) -> bytes:
    """The configured secret, or the one kept under the home (created when absent and `create`)."""
    if configured:
        return configured.encode()
    path = secret_file(home)
    if not path.exists() and not create:
        raise SecretMissing(f"no secret: set CHECKUP_RISK_SECRET_KEY to the service's value (none is kept in {path})")
    return create_once(path, lambda: secrets.token_urlsafe(48)).encode()


def create_once(path: Path, make: Callable[[], str]) -> str:
    """The text kept in `path` (mode 600), written first from `make()` when absent. Processes that
    start together agree on one value: it is written whole to a private file, then linked into place
    atomically (the first link wins), so no reader ever sees a partly written file."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(make() + "\n")
            os.chmod(partial, 0o600)
            with contextlib.suppress(FileExistsError):
                os.link(partial, path)
        finally:
            os.unlink(partial)
    text = path.read_text().strip()
    if not text:
        raise ValueError(f"{path} is empty: delete it to have a new one made, or set the variable instead")
    return text


def derive(secret: bytes, purpose: str) -> bytes:
    """The key for one purpose ("report-link", "pseudonym", "audit")."""
    return hmac.new(secret, f"checkup-risk/{purpose}".encode(), hashlib.sha256).digest()


def pseudonym(key: bytes, person_id: str) -> str:
    """A keyed, stable stand-in for a person id: the same person gets the same key under one secret,
    and without the secret it cannot be traced back or recomputed from a guessed id."""
    return hmac.new(key, str(person_id).encode(), hashlib.sha256).hexdigest()[:32]
