"""The shared state: replay cache, report links, CDS feedback, named API keys, audit trail.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cds_jti",
        sa.Column("iss", sa.String(512), primary_key=True),
        sa.Column("jti", sa.String(256), primary_key=True),
        sa.Column("exp", sa.Float, nullable=False, index=True),
    )
    op.create_table(
        "report_links",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("expires", sa.Float, nullable=False, index=True),
        sa.Column("records", sa.Text, nullable=False),
    )
    op.create_table(
        "cds_feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("card", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(128)),
        sa.Column("at", sa.String(64)),
    )
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.String(256), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("revoked", sa.Float),
    )
    op.create_table(
        "audit",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(32), nullable=False, index=True),
        sa.Column("client", sa.String(256), nullable=False),
        sa.Column("route", sa.String(128), nullable=False),
        sa.Column("patients", sa.Text, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "state_health",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("state_health", "audit", "api_keys", "cds_feedback", "report_links", "cds_jti"):
        op.drop_table(table)
