"""The prediction log (`models.prediction_log.TABLE`): one row per scored checkup, pseudonymised,
written by the service when the shared state is PostgreSQL. Its columns are spelt out here, not read
from the model's schema: a migration must create the same table whatever the code says later.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("log_date", sa.Date, nullable=False, index=True),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("person_key", sa.String(64), nullable=False),
        sa.Column("exam_date", sa.Date),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("history_checkups", sa.Integer),
        sa.Column("sex", sa.String(16)),
        sa.Column("age", sa.Float),
        sa.Column("age_group", sa.Float),
        sa.Column("height_cm", sa.Float),
        sa.Column("weight_kg", sa.Float),
        sa.Column("waist_cm", sa.Float),
        sa.Column("sbp", sa.Float),
        sa.Column("dbp", sa.Float),
        sa.Column("fasting_glucose", sa.Float),
        sa.Column("total_cholesterol", sa.Float),
        sa.Column("triglycerides", sa.Float),
        sa.Column("hdl", sa.Float),
        sa.Column("ldl", sa.Float),
        sa.Column("hemoglobin", sa.Float),
        sa.Column("urine_protein", sa.Float),
        sa.Column("serum_creatinine", sa.Float),
        sa.Column("ast", sa.Float),
        sa.Column("alt", sa.Float),
        sa.Column("ggt", sa.Float),
        sa.Column("smoking_status", sa.Float),
        sa.Column("drinking", sa.Float),
        sa.Column("history_stroke", sa.Float),
        sa.Column("history_heart_disease", sa.Float),
        sa.Column("history_hypertension", sa.Float),
        sa.Column("history_diabetes", sa.Float),
        sa.Column("history_dyslipidemia", sa.Float),
        sa.Column("on_antihypertensive", sa.Float),
        sa.Column("on_diabetes_medication", sa.Float),
        sa.Column("on_statin", sa.Float),
        sa.Column("family_history_cvd", sa.Float),
        sa.Column("family_history_diabetes", sa.Float),
        sa.Column("activity_days_per_week", sa.Float),
        sa.Column("cvd_probability", sa.Float),
        sa.Column("diabetes_probability", sa.Float),
        sa.Column("hypertension_probability", sa.Float),
        sa.Column("dyslipidemia_probability", sa.Float),
        sa.Column("ckd_probability", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("prediction_log")
