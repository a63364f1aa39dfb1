"""The shared state's tables (SQLAlchemy Core), for the queries of the stores that use them.

The schema itself is made and changed only by the Alembic migrations in `serving/migrations`;
a test checks that these definitions and the migrated database agree.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text

from models.prediction_log import TABLE as PREDICTION_LOG

metadata = MetaData()

# CDS JWT ids seen, until their token expires: a second use of one is a replay.
replay = Table(
    "cds_jti",
    metadata,
    Column("iss", String(512), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("exp", Float, nullable=False, index=True),
)

# The checkups behind a CDS card's report link, until the link expires.
report_links = Table(
    "report_links",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("expires", Float, nullable=False, index=True),
    Column("records", Text, nullable=False),
)

# Clinicians' answers to cards: no patient data.
feedback = Table(
    "cds_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("card", String(128), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("reason", String(128)),
    Column("at", String(64)),
)

# Named API clients: the key itself is never kept, only its SHA-256.
api_keys = Table(
    "api_keys",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(256), nullable=False),
    Column("created", Float, nullable=False),
    Column("revoked", Float),
)

# The audit trail: append-only, each entry's `hash` covers the one before it.
audit = Table(
    "audit",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False, index=True),
    Column("client", String(256), nullable=False),
    Column("route", String(128), nullable=False),
    Column("patients", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Facts about the state itself: `secret` holds a fingerprint of the secret (features.pseudonym)
# its links, pseudonyms and audit chain were made with, so an instance with another is refused.
meta = Table(
    "state_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

# One row, rewritten by readiness checks: proves the store takes writes, not only reads.
health = Table(
    "state_health",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", Float, nullable=False),
)

# The prediction log, when the shared state is PostgreSQL (`models.prediction_log` defines it; with
# SQLite the table exists but the log is Parquet files, see serving.prediction_logger).
prediction_log = PREDICTION_LOG.to_metadata(metadata)
