"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from serving.state_db import StateDB, database_url


@pytest.fixture
def state(tmp_path) -> StateDB:
    """A migrated SQLite shared state in a fresh folder."""
    db = StateDB(database_url(None, tmp_path))
    db.migrate()
    return db
