"""`shopstream alerts send` from the real command line to real HTTP receivers: what a
scheduler's failure callback uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import HttpReceiver

pytestmark = pytest.mark.integration
SHOPSTREAM = str(Path(sys.executable).parent / "shopstream")


def test_a_critical_notice_reaches_slack_and_opens_a_pagerduty_incident(
    http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    env = os.environ | {
        "SHOPSTREAM_STATE_DIR": str(tmp_path),
        "SHOPSTREAM_ALERTS_SLACK_WEBHOOK_URL": http_receiver.url("/slack"),
        "SHOPSTREAM_ALERTS_PAGERDUTY_ROUTING_KEY": "rk-test",
        "SHOPSTREAM_ALERTS_PAGERDUTY_URL": http_receiver.url("/v2/enqueue"),
        "SHOPSTREAM_ALERTS_RETRY_BASE_S": "0.05",
    }
    http_receiver.script["/slack"] = [503]  # retried, then accepted
    done = subprocess.run(
        [
            SHOPSTREAM,
            "alerts",
            "send",
            "--severity",
            "critical",
            "--summary",
            "dbt_build failed for 2026-11-24",
            "--dedup-key",
            "batch:2026-11-24:dbt_build",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    slack = http_receiver.bodies("/slack")
    assert len(slack) == 2
    assert slack[-1]["text"].startswith("*dbt_build failed for 2026-11-24*")
    [event] = http_receiver.bodies("/v2/enqueue")
    assert event["routing_key"] == "rk-test"
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "batch:2026-11-24:dbt_build"


def test_a_channel_that_keeps_failing_makes_the_command_fail(
    http_receiver: HttpReceiver, tmp_path: Path
) -> None:
    env = os.environ | {
        "SHOPSTREAM_STATE_DIR": str(tmp_path),
        "SHOPSTREAM_ALERTS_SLACK_WEBHOOK_URL": http_receiver.url("/slack"),
    }
    http_receiver.script["/slack"] = [400]
    done = subprocess.run(
        [SHOPSTREAM, "alerts", "send", "--summary", "hello"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "slack: failed" in done.stdout
