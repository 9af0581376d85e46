"""Run the real app in a subprocess, with the stand-in engines from tests/support.py.

Usage: python -m tests.launch PORT   (settings come from HYPERLOCAL_* variables)
"""

from __future__ import annotations

import sys

import uvicorn

from hyperlocal.app import create_app
from hyperlocal.logs import configure_logging
from hyperlocal.settings import Settings
from tests.support import TEST_ENGINES


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, json_lines=True)
    app = create_app(settings, engines=TEST_ENGINES)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None)


if __name__ == "__main__":
    main()
