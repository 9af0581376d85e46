"""``hyperlocal keys`` and ``hyperlocal credits``: keys are shown once and stored only as a hash."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.cli._cli import Cli


def create_key(cli: Cli, name: str = "ci") -> dict[str, Any]:
    created: dict[str, Any] = cli.json(
        "keys", "create", "--name", name, "--credits", "1000", "--rate-limit", "50", "--json"
    )
    return created


def listed(cli: Cli, key_id: str, stdout: str | None = None) -> dict[str, Any]:
    rows = json.loads(stdout) if stdout is not None else cli.json("keys", "list", "--json")
    row: dict[str, Any] = {r["id"]: r for r in rows}[key_id]
    return row


def every_value(db_file: Path) -> list[str]:
    with closing(sqlite3.connect(db_file)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [str(v) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"') for v in row]


def test_create_prints_the_key_once_as_json(cli: Cli) -> None:
    created = create_key(cli)

    assert set(created) == {"id", "key", "webhookSecret", "credits"}
    assert created["key"].startswith("ck_")
    assert created["webhookSecret"].startswith("whsec_")
    assert created["credits"] == 1000


def test_the_raw_key_is_not_stored_only_its_hash(cli: Cli) -> None:
    key = create_key(cli)["key"]
    db_file = cli.data_dir / "hyperlocal.db"

    values = every_value(db_file)

    assert hashlib.sha256(key.encode()).hexdigest() in values
    assert not [v for v in values if key in v]
    on_disk = b"".join(p.read_bytes() for p in cli.data_dir.rglob("*") if p.is_file())
    assert key.encode() not in on_disk


def test_list_shows_the_key_but_never_the_key_itself(cli: Cli) -> None:
    created = create_key(cli, name="listed")

    proc = cli.run("keys", "list", "--json")

    row = listed(cli, created["id"], proc.stdout)
    assert (row["name"], row["credits"], row["revoked"]) == ("listed", 1000, False)
    assert created["key"] not in proc.stdout + proc.stderr


def test_revoke_marks_the_key_revoked(cli: Cli) -> None:
    key_id = create_key(cli)["id"]

    cli.run("keys", "revoke", key_id)

    assert listed(cli, key_id)["revoked"] is True


def test_revoking_an_unknown_key_fails_clearly(cli: Cli) -> None:
    proc = cli.run("keys", "revoke", "key_doesnotexist", ok=False)

    assert proc.returncode != 0
    assert "key not found" in (proc.stdout + proc.stderr).lower()


def test_grant_raises_the_balance(cli: Cli) -> None:
    key_id = create_key(cli)["id"]

    cli.run("credits", "grant", key_id, "500")

    assert listed(cli, key_id)["credits"] == 1500


def test_granting_to_an_unknown_key_fails(cli: Cli) -> None:
    proc = cli.run("credits", "grant", "key_doesnotexist", "500", ok=False)

    assert proc.returncode != 0
    assert "key not found" in (proc.stdout + proc.stderr).lower()


def test_granting_a_non_positive_amount_fails(cli: Cli) -> None:
    key_id = create_key(cli)["id"]

    for amount in ("0", "-5"):
        proc = cli.run("credits", "grant", key_id, amount, ok=False)
        assert proc.returncode != 0, amount
        assert "positive" in (proc.stdout + proc.stderr).lower()
    assert listed(cli, key_id)["credits"] == 1000
