"""``hyperlocal models`` and ``hyperlocal settings``: read-only views that never leak secrets."""

from __future__ import annotations

import json

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


def test_models_show_each_ids_active_route_and_fal_makes_41_real(cli: Cli) -> None:
    offline = cli.json("models", "--json")
    assert all(row["route"].startswith("engine:") for row in offline)

    key = {"FAL_KEY": "fal-key-0123456789abcdef"}
    rows = {row["id"]: row for row in json.loads(cli.run("models", "--json", env=key).stdout)}
    through_fal = [i for i, row in rows.items() if row["route"].startswith("fal:")]
    assert len(through_fal) >= 41
    assert rows["kling-2-6-i2v-pro"]["route"] == "fal:fal-ai/kling-video/v2.6/pro/image-to-video"
    # Sora 2's API is gone (OpenAI, 2026-09-24; fal removed it): no route, the stand-in serves
    assert (
        rows["sora-2-i2v"]["routes"] == [] and rows["sora-2-i2v"]["route"] == "engine:motion-video"
    )
    table = " ".join(cli.run("models", env=key).stdout.split())
    assert "reach their real model through a provider key" in table


def test_settings_show_which_providers_are_configured_with_keys_masked(cli: Cli) -> None:
    key = "r8_secret-token-marker-1234"
    proc = cli.run("settings", env={"REPLICATE_API_TOKEN": key, "FAL_KEY": "short"})
    output = proc.stdout + proc.stderr
    assert "secret-token-marker" not in output and "short" not in output.split("providers")[1]
    flat = " ".join(proc.stdout.split())
    assert "REPLICATE_API_TOKEN=****1234" in flat
    assert "FAL_KEY=****" in flat and "OPENAI_API_KEY=(not set)" in flat
