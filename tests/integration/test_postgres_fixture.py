"""The throwaway PostgreSQL server (tests/postgres.py, fixtures in tests/conftest.py) works with
SQLAlchemy 2 and psycopg 3, and gives each test its own database."""

import re

import pytest

pytestmark = pytest.mark.slow

URL_FORM = re.compile(r"postgresql://postgres@/(?P<db>\w+)\?host=(?P<host>/tmp/pg\w+)&port=(?P<port>\d+)")


def _engine(url: str):
    from sqlalchemy import create_engine

    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def test_table_round_trip(postgres_url, postgres_server):
    from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

    match = URL_FORM.fullmatch(postgres_url)
    assert match, postgres_url
    assert match["host"] == str(postgres_server.socket_dir) and int(match["port"]) == postgres_server.port
    assert len(f"{match['host']}/.s.PGSQL.{match['port']}") < 100  # the Unix socket path limit

    meta = MetaData()
    people = Table("people", meta, Column("id", Integer, primary_key=True), Column("name", String(40)))
    engine = _engine(postgres_url)
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(people), [{"id": 1, "name": "김민수"}, {"id": 2, "name": "Lee"}])
        with engine.connect() as conn:
            assert conn.execute(select(people.c.name).order_by(people.c.id)).scalars().all() == ["김민수", "Lee"]
            assert conn.exec_driver_sql("select current_database()").scalar() == match["db"]
    finally:
        engine.dispose()


def test_each_test_gets_an_empty_database(postgres_url):
    from sqlalchemy import inspect

    engine = _engine(postgres_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
