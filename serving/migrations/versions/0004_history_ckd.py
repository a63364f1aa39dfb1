"""The prediction log keeps `history_ckd`, the record field a FHIR CKD Condition sets.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("prediction_log", sa.Column("history_ckd", sa.Float))


def downgrade() -> None:
    op.drop_column("prediction_log", "history_ckd")
