"""Alembic's entry point for the shared state: runs on the connection `serving.state_db` hands over
(no alembic.ini, no logging configuration of its own)."""

from alembic import context

from serving.state_tables import metadata

connection = context.config.attributes["connection"]
# SQLite alters tables by copying them ("batch" mode); PostgreSQL alters them in place.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
