"""`shopstream demo info` prints the dashboard's URL with the local key in its fragment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")


def _info(tmp_path: Path, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SHOPSTREAM_")}
    environ |= {"SHOPSTREAM_STATE_DIR": str(tmp_path), "SHOPSTREAM_API_PORT": "8123", **env}
    done = subprocess.run(
        [SHOPSTREAM, "demo", "info"], env=environ, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_info_prints_the_dashboard_url_with_the_local_key(tmp_path: Path) -> None:
    out = _info(tmp_path)
    key = (tmp_path / "api-key").read_text().strip()
    assert f"http://127.0.0.1:8123/dashboard#key={key}" in out


def test_with_configured_keys_the_url_carries_none(tmp_path: Path) -> None:
    keys = '[{"name": "ops", "sha256": "' + "a" * 64 + '", "scopes": ["read"]}]'
    out = _info(tmp_path, SHOPSTREAM_API_KEYS=keys)
    assert "http://127.0.0.1:8123/dashboard " in out
    assert "#key=" not in out and not (tmp_path / "api-key").exists()
