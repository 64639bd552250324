"""Migration 0008: readers stored with a Unicode domain get its IDNA form; what cannot be sent is suppressed."""

from __future__ import annotations

import datetime as dt

from alembic import command
from sqlalchemy import create_engine, text

from pipeline.store.database import alembic_config, open_database

NOW = dt.datetime(2026, 11, 1, 9, 0)


def database_at_0007(path):
    """A SQLite database migrated up to 0007, with one audience, and its URL."""
    url = f"sqlite:///{path}"
    engine = create_engine(url)
    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
        connection.execute(text("INSERT INTO audiences (id, name, created_at) VALUES (1, 'main', :now)"), {"now": NOW})
    return engine, url


def readers_after_upgrade(url: str) -> list[tuple]:
    """Open the database (which applies the pending migrations) and return (id, email, status, suppressed_reason)."""
    db = open_database(url)
    with db.session() as session:
        rows = session.execute(text("SELECT id, email, status, suppressed_reason FROM readers ORDER BY id")).all()
    db.dispose()
    return [tuple(r) for r in rows]


def add_reader(engine, reader_id: int, email: str, status: str = "subscribed", suppressed: str | None = None) -> None:
    """Insert a reader as the importer before 0008 could have stored them."""
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO readers (id, audience_id, public_id, email, first_name, last_name, timezone, status, tags,"
            " suppressed_reason, soft_bounces, created_at, updated_at)"
            " VALUES (:id, 1, :public, :email, '', '', '', :status, '[]', :suppressed, 0, :now, :now)"),
            {"id": reader_id, "public": f"p{reader_id:031d}", "email": email, "status": status,
             "suppressed": suppressed, "now": NOW})


def test_unicode_domains_are_converted_and_unsendable_addresses_suppressed(tmp_path):
    """0008 converts anna@münchen.de, suppresses jürgen@example.com, and leaves ASCII readers alone."""
    engine, url = database_at_0007(tmp_path / "old.db")
    add_reader(engine, 1, "anna@münchen.de")
    add_reader(engine, 2, "jürgen@example.com")
    add_reader(engine, 3, "ann@example.com")
    engine.dispose()
    assert readers_after_upgrade(url) == [
        (1, "anna@xn--mnchen-3ya.de", "subscribed", None),
        (2, "jürgen@example.com", "subscribed", "address-not-ascii"),
        (3, "ann@example.com", "subscribed", None),
    ]


def test_a_collision_keeps_the_ascii_reader_and_the_stricter_choice(tmp_path):
    """When both forms of one mailbox exist, the ASCII reader stays, takes the other's opt-out, and the other is suppressed."""
    engine, url = database_at_0007(tmp_path / "old.db")
    add_reader(engine, 1, "anna@xn--mnchen-3ya.de")
    add_reader(engine, 2, "anna@münchen.de", status="unsubscribed")
    add_reader(engine, 3, "bo@xn--mnchen-3ya.de", status="cleaned")
    add_reader(engine, 4, "bo@münchen.de", suppressed="spamreport")
    engine.dispose()
    assert readers_after_upgrade(url) == [
        (1, "anna@xn--mnchen-3ya.de", "unsubscribed", None),
        (2, "anna@münchen.de", "unsubscribed", "duplicate-address"),
        (3, "bo@xn--mnchen-3ya.de", "cleaned", "spamreport"),
        (4, "bo@münchen.de", "subscribed", "spamreport"),
    ]
