"""``hyperlocal models`` and ``hyperlocal settings``: read-only views that never leak secrets."""

from __future__ import annotations

from tests.cli._cli import Cli

SETTING_NAMES = [
    "HYPERLOCAL_DATA_DIR",
    "HYPERLOCAL_DATABASE_URL",
    "HYPERLOCAL_PUBLIC_URL",
    "HYPERLOCAL_ALLOW_PRIVATE_URLS",
    "HYPERLOCAL_REDIS_URL",
]


def test_models_lists_the_catalogue(cli: Cli) -> None:
    rows = cli.json("models", "--json")

    assert len(rows) >= 49
    by_id = {row["id"]: row for row in rows}
    assert by_id["gemini-3-1-flash-t2i"]["category"] == "image"


def test_models_list_shows_local_weights_as_json_and_as_a_table(cli: Cli) -> None:
    folder = cli.data_dir / "models" / "sd"
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")

    assert cli.json("models", "list", "--json") == [
        {"name": "sd", "path": str(folder.resolve()), "size": 2, "kind": "diffusers"}
    ]
    table = cli.run("models", "list").stdout
    assert "sd" in table and "diffusers" in table and "2 B" in table


def test_models_pull_of_an_unknown_name_asks_for_a_repository(cli: Cli) -> None:
    proc = cli.run("models", "pull", "mystery", ok=False)

    error = " ".join(proc.stderr.split())  # rich wraps it at the terminal's width
    assert proc.returncode == 1
    assert "'mystery' is not a known name" in error and "give a repo id" in error


def test_settings_lists_every_setting_with_help(cli: Cli) -> None:
    out = " ".join(cli.run("settings").stdout.split())

    for name in SETTING_NAMES:
        assert name in out
    assert "Directory for the SQLite database" in out
    assert "Redis URL" in out


def test_settings_masks_secrets(cli: Cli) -> None:
    proc = cli.run(
        "settings",
        env={
            "HYPERLOCAL_DATABASE_URL": "sqlite+aiosqlite:////tmp/x-secretpw.db",
            "HYPERLOCAL_REDIS_URL": "redis://:redispw-marker@127.0.0.1:6379/0",
        },
    )

    output = proc.stdout + proc.stderr
    assert "secretpw" not in output
    assert "redispw-marker" not in output
    assert "HYPERLOCAL_DATABASE_URL" in output
