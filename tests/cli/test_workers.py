"""``hyperlocal workers``: the workers view of a running server, as a table or as its JSON."""

from __future__ import annotations

import json
import os

from hyperlocal.app import create_app
from tests.cli._cli import Cli
from tests.conftest import SettingsFactory
from tests.support import free_port, serve_in_thread


def test_workers_shows_the_servers_view_with_an_admin_key(
    cli: Cli, make_settings: SettingsFactory
) -> None:
    admin = cli.json("keys", "create", "--name", "ops", "--admin", "--json")["key"]
    user = cli.json("keys", "create", "--name", "user", "--json")["key"]
    app = create_app(make_settings(data_dir=cli.data_dir))
    with serve_in_thread(app) as url:
        env = {"HYPERLOCAL_URL": url, "HYPERLOCAL_ADMIN_KEY": admin}
        view = json.loads(cli.run("workers", "--json", env=env).stdout)
        (worker,) = view["workers"]
        assert worker["pid"] == os.getpid()  # the server runs in this test's process
        assert [d["device"] for d in worker["devices"]] == ["cpu"]
        table = cli.run("workers", env=env).stdout
        assert "1 worker(s)" in table and "cpu" in table and "jobs by model" in table

        refused = cli.run("workers", "--url", url, "--key", user, ok=False)
        assert refused.returncode == 1 and "HTTP 403" in refused.stderr
    assert user not in refused.stderr + refused.stdout  # a key is never printed


def test_workers_says_what_is_missing(cli: Cli) -> None:
    keyless = cli.run("workers", ok=False)
    assert keyless.returncode == 2 and "HYPERLOCAL_ADMIN_KEY" in keyless.stderr
    nobody = f"http://127.0.0.1:{free_port()}"
    down = cli.run("workers", "--url", nobody, "--key", "ck_nothing", ok=False)
    said = " ".join(down.stderr.split())  # the terminal's width wraps the line
    assert down.returncode == 1 and f"is a server running at {nobody}?" in said
