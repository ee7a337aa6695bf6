"""Alert delivery against real receivers: an HTTP server on 127.0.0.1 standing in for Slack
and PagerDuty, and an SMTP server (aiosmtpd) with STARTTLS and AUTH; alert state in a fresh
ops database of its own on the stack's PostgreSQL.

The engine's output is the contract, so the tests write ``alerting.transitions`` rows (and
the engine's status) directly and assert what arrived at each receiver and what the
delivery log says.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from alerts.delivery import deliver_pending, run_forever, worker
from alerts.delivery.worker import Deliverer, DeliverySummary
from alerts.ops_db import connect
from shopstream.settings import Settings

if TYPE_CHECKING:  # the fixture lives in this folder's conftest
    from tests.integration.conftest import HttpReceiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SLACK_PATH = "/services/T000/B000/XXXX"
PD_PATH = "/v2/enqueue"
ROUTING_KEY = "R0UTING-KEY-FOR-TESTS"
PUBLIC_URL = "https://alerts.shop.test"
SMTP_USER, SMTP_PASSWORD = "alerts", "s3cret-pw"
RECIPIENTS = ["ops@shop.test", "buyer@shop.test"]


# Receivers ------------------------------------------------------------------------------


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    subject: str
    text: str
    over_tls: bool
    authenticated: bool


class MailRecorder:
    def __init__(self) -> None:
        self.mails: list[Mail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        body = parsed.get_body(("plain",))
        self.mails.append(
            Mail(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                # Python folds a long subject right after "Subject:"; unfolded, that is the
                # usual single space, which its own parser leaves in.
                str(parsed["Subject"]).strip(),
                body.get_content() if body is not None else "",
                session.ssl is not None,
                bool(session.authenticated),
            )
        )
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    cert: Path
    recorder: MailRecorder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl CLI."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, f"openssl could not make a test certificate: {made.stderr}"
    return cert, key


@pytest.fixture
def smtp_server(
    tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SmtpServer]:
    """aiosmtpd requiring STARTTLS and AUTH; the client trusts its certificate through
    SSL_CERT_FILE, so the certificate is verified as in production."""
    cert, key = tls_cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    recorder = MailRecorder()

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False)  # handled=False: answer 535

    port = _free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    yield SmtpServer(port, cert, recorder)
    controller.stop()


# Settings and rows ----------------------------------------------------------------------


def configure(
    settings: Settings,
    tmp_path: Path,
    *,
    http: HttpReceiver | None = None,
    smtp: SmtpServer | None = None,
    pagerduty: bool = True,
    **extra: Any,
) -> Settings:
    update: dict[str, Any] = {
        "alerts_public_url": PUBLIC_URL,
        "alerts_retry_base_s": 0.01,
        "alerts_max_attempts": 3,
        "alerts_cooldown_s": 1800.0,
        "lake_root": str(tmp_path / "lake"),  # no gold tables: the lake check stays out
        "alerts_slack_webhook_url": SecretStr(""),
        "alerts_pagerduty_routing_key": SecretStr(""),
        "alerts_smtp_host": "",
        "alerts_email_to": "",
        "alerts_dry_run": False,
        "alerts_routes": "",
    }
    if http is not None:
        update["alerts_slack_webhook_url"] = SecretStr(http.url(SLACK_PATH))
        if pagerduty:
            update["alerts_pagerduty_routing_key"] = SecretStr(ROUTING_KEY)
            update["alerts_pagerduty_url"] = http.url(PD_PATH)
    if smtp is not None:
        update |= {
            "alerts_smtp_host": "127.0.0.1",
            "alerts_smtp_port": smtp.port,
            "alerts_smtp_starttls": True,
            "alerts_smtp_user": SMTP_USER,
            "alerts_smtp_password": SecretStr(SMTP_PASSWORD),
            "alerts_email_from": "shopstream@shop.test",
            "alerts_email_to": ", ".join(RECIPIENTS),
        }
    return settings.model_copy(update=update | extra)


def seed_places(settings: Settings) -> None:
    with connect(settings) as conn:
        conn.execute(
            "insert into alerting.products (product_id, sku, product_name, category, cdc_lsn)"
            " values (12, 'MUG-BLU', 'Blue Mug', 'Kitchen', 1), (13, 'BOT-1', 'Robot', 'Toys', 1)"
        )
        conn.execute(
            "insert into alerting.warehouses"
            " (warehouse_id, warehouse_code, warehouse_name, region, cdc_lsn)"
            " values (3, 'BER', 'Berlin DC', 'eu-central', 1)"
        )


def add_transition(
    settings: Settings,
    alert_id: str,
    lsn: int,
    transition: str,
    severity: str | None,
    previous: str | None = None,
    *,
    on_hand: int = 4,
    notify: bool = False,
    age_s: float = 0.0,
) -> int:
    product_id, warehouse_id, _ = (int(p) for p in alert_id.split("-"))
    with connect(settings) as conn:
        row = conn.execute(
            "insert into alerting.transitions (alert_id, product_id, warehouse_id, transition,"
            " severity, previous_severity, cdc_lsn, on_hand, reorder_point, units_out_7d,"
            " days_of_cover, transitioned_at, committed_at)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, 10, 21, %s,"
            " now() - make_interval(secs => %s), now() - make_interval(secs => %s))"
            " returning seq",
            (
                alert_id,
                product_id,
                warehouse_id,
                transition,
                severity,
                previous,
                lsn,
                on_hand,
                round(on_hand / 3, 1),
                age_s,
                age_s,
            ),
        ).fetchone()
        assert row is not None
        if notify:  # as the engine does, in the transaction that writes the transition
            conn.execute("select pg_notify('alerting_transitions', %s)", (str(row[0]),))
    return int(row[0])


def deliveries(settings: Settings) -> list[dict[str, Any]]:
    with connect(settings) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute("select * from alerting.deliveries order by delivery_id").fetchall()


def cursor_seq(settings: Settings) -> int:
    with connect(settings) as conn:
        row = conn.execute("select last_seq from alerting.delivery_cursor").fetchone()
    assert row is not None
    return int(row[0])


# Transitions ----------------------------------------------------------------------------


def test_transitions_reach_every_channel_once_and_replays_send_nothing(
    ops_settings: Settings, tmp_path: Path, http_receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    settings = configure(ops_settings, tmp_path, http=http_receiver, smtp=smtp_server)
    seed_places(settings)
    add_transition(settings, "12-3-100", 100, "opened", "warning")
    add_transition(settings, "12-3-100", 110, "escalated", "critical", "warning", on_hand=0)
    last = add_transition(settings, "12-3-100", 120, "resolved", None, "critical", on_hand=40)

    summary = deliver_pending(settings)

    # Slack and email hear all three (the cooldown lets a turn to critical and the end of a
    # told alert through); PagerDuty the page and its resolve.
    assert (summary.transitions, summary.sent, summary.suppressed, summary.failed) == (3, 8, 0, 0)
    slack = http_receiver.bodies(SLACK_PATH)
    assert [m["attachments"][0]["color"] for m in slack] == ["#FFBF00", "#D00000", "#2EB67D"]
    assert "WARNING low stock opened: Blue Mug at Berlin DC" in slack[0]["text"]
    assert "CRITICAL low stock escalated from warning" in slack[1]["text"]
    assert "RESOLVED low stock resolved (was critical)" in slack[2]["text"]
    link = f"{PUBLIC_URL}/v1/alerts/low-stock/12-3-100"
    assert all(m["attachments"][0]["title_link"] == link for m in slack)
    fields = {f["title"]: f["value"] for f in slack[1]["attachments"][0]["fields"]}
    assert fields["Product"] == "Blue Mug (#12, SKU MUG-BLU, Kitchen)"
    assert fields["Warehouse"] == "Berlin DC (#3, BER, eu-central)"
    assert fields["On hand / reorder point"] == "0 / 10"

    pages = [r for r in http_receiver.requests if r.path == PD_PATH]
    assert [(p.body["event_action"], p.body["dedup_key"]) for p in pages] == [
        ("trigger", "12-3-100"),
        ("resolve", "12-3-100"),
    ]
    assert all(p.body["routing_key"] == ROUTING_KEY for p in pages)
    assert pages[0].headers["content-type"] == "application/json"
    assert pages[0].body["payload"]["severity"] == "critical"
    assert pages[0].body["links"][0]["href"] == link

    mails = smtp_server.recorder.mails
    assert len(mails) == 3
    assert all(m.rcpt_tos == RECIPIENTS and m.over_tls and m.authenticated for m in mails)
    assert mails[0].mail_from == "shopstream@shop.test"
    assert mails[1].subject == (
        "[shopstream] CRITICAL low stock escalated from warning: Blue Mug at Berlin DC"
    )
    assert f"Details: {link}" in mails[1].text

    log = deliveries(settings)
    assert sorted((d["channel"], d["kind"]) for d in log) == sorted(
        [(c, k) for c in ("slack", "email") for k in ("opened", "escalated", "resolved")]
        + [("pagerduty", "escalated"), ("pagerduty", "resolved")]
    )
    assert {(d["status"], d["attempts"]) for d in log} == {("sent", 1)}
    assert "routing_key" not in json.dumps([d["payload"] for d in log])  # no secret logged
    assert cursor_seq(settings) == last

    # A second pass finds nothing new.
    assert deliver_pending(settings).sent == 0
    # A rebuild writes the same transitions again under new seqs: nothing is sent twice,
    # whether the sequence carries on or restarts below the cursor.
    for reset in (
        "delete from alerting.transitions",
        "truncate alerting.transitions restart identity",
    ):
        with connect(settings) as conn:
            conn.execute(reset)
        add_transition(settings, "12-3-100", 100, "opened", "warning")
        add_transition(settings, "12-3-100", 110, "escalated", "critical", "warning", on_hand=0)
        add_transition(settings, "12-3-100", 120, "resolved", None, "critical", on_hand=40)
        replay = deliver_pending(settings)
        assert (replay.transitions, replay.duplicates, replay.sent) == (3, 8, 0), reset
    assert len(http_receiver.requests) == 5
    assert len(smtp_server.recorder.mails) == 3
    assert len(deliveries(settings)) == 8


def test_cooldown_suppresses_a_reopen_but_not_a_turn_to_critical(
    ops_settings: Settings, tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    settings = configure(ops_settings, tmp_path, http=http_receiver, pagerduty=False)
    seed_places(settings)
    add_transition(settings, "12-3-100", 100, "opened", "warning")
    add_transition(settings, "12-3-100", 105, "resolved", None, "warning")
    assert deliver_pending(settings).sent == 2  # the end of a told alert is never held back

    add_transition(settings, "12-3-130", 130, "opened", "warning")  # the same stock, again
    add_transition(settings, "13-3-131", 131, "opened", "warning")  # other stock
    held = deliver_pending(settings)
    assert (held.sent, held.suppressed) == (1, 1)
    add_transition(settings, "12-3-130", 140, "escalated", "critical", "warning", on_hand=0)
    assert deliver_pending(settings).sent == 1

    log = {(d["alert_id"], d["kind"]): d for d in deliveries(settings)}
    assert log[("12-3-130", "opened")]["status"] == "suppressed_cooldown"
    assert log[("12-3-130", "opened")]["payload"]["attachments"][0]["color"] == "#FFBF00"
    assert log[("13-3-131", "opened")]["status"] == "sent"
    assert log[("12-3-130", "escalated")]["status"] == "sent"
    texts = [b["text"] for b in http_receiver.bodies(SLACK_PATH)]
    assert len(texts) == 4
    assert "Robot" in texts[2] and "CRITICAL" in texts[3]

    # A change two hours old (a first start replaying the log) is old news: not sent.
    add_transition(settings, "13-3-300", 300, "opened", "critical", on_hand=0, age_s=7200)
    old = deliver_pending(settings)
    assert (old.transitions, old.skipped_history, old.sent) == (1, 1, 0)
    assert len(http_receiver.requests) == 4


def test_dry_run_sends_nothing_and_logs_what_it_would_have_sent(
    ops_settings: Settings, tmp_path: Path, http_receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    settings = configure(
        ops_settings, tmp_path, http=http_receiver, smtp=smtp_server, alerts_dry_run=True
    )
    seed_places(settings)
    add_transition(settings, "12-3-100", 100, "opened", "critical", on_hand=0)
    summary = deliver_pending(settings)
    assert (summary.dry_run, summary.sent) == (3, 0)
    assert http_receiver.requests == []
    assert smtp_server.recorder.mails == []
    log = {d["channel"]: d for d in deliveries(settings)}
    assert {d["status"] for d in log.values()} == {"dry_run"}
    assert log["pagerduty"]["payload"]["event_action"] == "trigger"
    assert log["email"]["payload"]["to"] == RECIPIENTS
    assert "CRITICAL low stock opened" in log["slack"]["payload"]["text"]


def test_retries_then_success_and_failures_with_their_code(
    ops_settings: Settings, tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    settings = configure(ops_settings, tmp_path, http=http_receiver)
    seed_places(settings)
    http_receiver.script[SLACK_PATH] = [500, 500]  # fails twice, then takes it
    http_receiver.script[PD_PATH] = [503, 503, 503, 503]  # never within 3 attempts
    add_transition(settings, "12-3-100", 100, "opened", "critical", on_hand=0)
    summary = deliver_pending(settings)
    assert (summary.sent, summary.failed, summary.retries) == (1, 1, 4)

    log = {d["channel"]: d for d in deliveries(settings)}
    assert (log["slack"]["status"], log["slack"]["attempts"]) == ("sent", 3)
    assert log["slack"]["response_code"] == 200
    assert (log["pagerduty"]["status"], log["pagerduty"]["attempts"]) == ("failed", 3)
    assert log["pagerduty"]["response_code"] == 503
    assert "HTTP 503" in log["pagerduty"]["last_error"]
    bodies = http_receiver.bodies(SLACK_PATH)
    assert len(bodies) == 3 and bodies[0] == bodies[2]  # a retry resends exactly what was logged

    # A rejected payload is not retried.
    http_receiver.script[SLACK_PATH] = [400]
    add_transition(settings, "13-3-200", 200, "opened", "warning")
    assert deliver_pending(settings).failed == 1
    rejected = [d for d in deliveries(settings) if d["alert_id"] == "13-3-200"]
    assert [(d["status"], d["attempts"], d["response_code"]) for d in rejected] == [
        ("failed", 1, 400)
    ]


def test_a_failing_delivery_holds_back_only_its_own_alert(
    ops_settings: Settings, tmp_path: Path, http_receiver: HttpReceiver
) -> None:
    settings = configure(
        ops_settings, tmp_path, http=http_receiver, pagerduty=False, alerts_retry_base_s=0.2
    )
    seed_places(settings)
    http_receiver.script[SLACK_PATH] = [500]
    add_transition(settings, "12-3-100", 100, "opened", "warning")
    add_transition(settings, "12-3-100", 101, "resolved", None, "warning")
    add_transition(settings, "13-3-100", 102, "opened", "warning")
    deliverer = Deliverer(settings)
    try:
        with connect(settings, autocommit=True) as conn:
            summary = DeliverySummary()
            deliverer.route_new(conn, summary)
            deliverer.send_due(conn, summary)
            # The other alert went out; this alert's resolve waits behind its opening.
            status = {(d["alert_id"], d["kind"]): d["status"] for d in deliveries(settings)}
            assert status == {
                ("12-3-100", "opened"): "pending",
                ("12-3-100", "resolved"): "pending",
                ("13-3-100", "opened"): "sent",
            }
            wait = deliverer.next_retry_in()
            assert wait is not None and 0 < wait <= 0.2
            time.sleep(wait)
            deliverer.send_due(conn, summary)
    finally:
        deliverer.close()
    assert {d["status"] for d in deliveries(settings)} == {"sent"}
    texts = [b["text"] for b in http_receiver.bodies(SLACK_PATH)]
    # In order per alert: the opening (failed, then resent) before its resolve.
    assert ["Robot" in t for t in texts] == [False, True, False, False]
    assert "RESOLVED" in texts[3] and "opened" in texts[2]


def test_wrong_smtp_password_fails_without_retrying(
    ops_settings: Settings, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = configure(
        ops_settings, tmp_path, smtp=smtp_server, alerts_smtp_password=SecretStr("wrong")
    )
    seed_places(settings)
    add_transition(settings, "12-3-100", 100, "opened", "warning")
    assert deliver_pending(settings).failed == 1
    (failed,) = deliveries(settings)
    assert (failed["status"], failed["attempts"], failed["response_code"]) == ("failed", 1, 535), (
        failed["last_error"]
    )
    assert smtp_server.recorder.mails == []


def test_run_forever_is_woken_by_the_engines_notify_and_stops(
    ops_settings: Settings,
    tmp_path: Path,
    http_receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = configure(ops_settings, tmp_path, http=http_receiver, pagerduty=False)
    seed_places(settings)
    # With the poll fallback far beyond the deadline below, only the NOTIFY can deliver in
    # time: this proves the LISTEN path, not the poll.
    monkeypatch.setattr(worker, "POLL_S", 60.0)
    stop = threading.Event()
    thread = threading.Thread(target=run_forever, args=(settings, stop), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # connected, listening and idle in its wait
        committed = time.monotonic()
        add_transition(settings, "12-3-100", 100, "opened", "warning", notify=True)
        while not http_receiver.bodies(SLACK_PATH) and time.monotonic() < committed + 10:
            time.sleep(0.005)
        latency = time.monotonic() - committed
        (message,) = http_receiver.bodies(SLACK_PATH)
        assert "WARNING low stock opened: Blue Mug" in message["text"]
        print(f"commit-to-Slack latency: {latency * 1000:.0f} ms")
    finally:
        stop.set()
        with connect(settings) as conn:  # wake it from its (long) wait to see the stop
            conn.execute("select pg_notify('alerting_transitions', '0')")
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert [d["status"] for d in deliveries(settings)] == ["sent"]


# The watchdog ---------------------------------------------------------------------------


def set_engine_status(settings: Settings, heartbeat_ago_s: float, change_ago_s: float) -> None:
    with connect(settings) as conn:
        conn.execute(
            "insert into alerting.engine_status"
            " (id, last_heartbeat_at, last_change_at, last_batch_at, records_applied)"
            " values (1, now() - make_interval(secs => %s), now() - make_interval(secs => %s),"
            " now(), 1)"
            " on conflict (id) do update set last_heartbeat_at = excluded.last_heartbeat_at,"
            " last_change_at = excluded.last_change_at, last_batch_at = excluded.last_batch_at",
            (heartbeat_ago_s, change_ago_s),
        )


def gold_commit(lake: Path, version: int, at: datetime) -> None:
    log = lake / "gold" / "low_stock_watch" / "_delta_log"
    log.mkdir(parents=True, exist_ok=True)
    stamp = int(at.timestamp() * 1000)
    (log / f"{version:020d}.json").write_text(
        json.dumps({"commitInfo": {"timestamp": stamp, "operation": "MERGE"}}) + "\n"
    )


def test_watchdog_pages_once_per_incident_and_recovers(
    ops_settings: Settings, tmp_path: Path, http_receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    settings = configure(
        ops_settings,
        tmp_path,
        http=http_receiver,
        smtp=smtp_server,
        alerts_freshness_bound_s=60.0,
        alerts_lake_freshness_bound_s=900.0,
    )
    lake = tmp_path / "lake"
    gold_commit(lake, 0, datetime.now(UTC) - timedelta(hours=2))
    # The heartbeat is 5 minutes old, and a change from 20 minutes ago never reached gold.
    set_engine_status(settings, heartbeat_ago_s=300, change_ago_s=1200)

    def kinds() -> list[tuple[str, str]]:
        return sorted((d["kind"], d["dedupe_key"].split(":")[1]) for d in deliveries(settings))

    first = deliver_pending(settings)
    assert (first.pipeline_events, first.sent) == (2, 6)
    slack = http_receiver.bodies(SLACK_PATH)
    heads = sorted(m["text"].split(" - ")[0] for m in slack)
    assert heads[0].startswith("*PIPELINE DOWN: streaming (the gold tables) is stale for 2h 0m")
    assert heads[1].startswith("*PIPELINE DOWN: the CDC/alert path is stale for 5m ")
    pages = http_receiver.bodies(PD_PATH)
    assert [(p["event_action"], p["dedup_key"]) for p in pages] == [
        ("trigger", "shopstream-pipeline")
    ] * 2
    assert (
        sorted(m.subject.split(":")[0] for m in smtp_server.recorder.mails)
        == ["[shopstream] PIPELINE DOWN"] * 2
    )

    # Repeated checks (each pass is a fresh deliverer, as after a restart) send nothing more.
    assert deliver_pending(settings).sent == 0
    assert deliver_pending(settings).sent == 0

    # The engine hears heartbeats again: the CDC incident closes, but PagerDuty's single
    # pipeline incident stays open while the lake is still behind.
    set_engine_status(settings, heartbeat_ago_s=2, change_ago_s=1200)
    recovered = deliver_pending(settings)
    assert (recovered.pipeline_events, recovered.sent) == (1, 2)
    assert "PIPELINE RECOVERED: the CDC/alert path" in http_receiver.bodies(SLACK_PATH)[-1]["text"]
    assert len(http_receiver.bodies(PD_PATH)) == 2

    # Gold commits again: the lake incident closes, and the page resolves.
    gold_commit(lake, 1, datetime.now(UTC))
    cleared = deliver_pending(settings)
    assert (cleared.pipeline_events, cleared.sent) == (1, 3)
    assert [p["event_action"] for p in http_receiver.bodies(PD_PATH)] == [
        "trigger",
        "trigger",
        "resolve",
    ]
    assert deliver_pending(settings).sent == 0
    assert kinds() == sorted(
        [("pipeline_down", c) for c in ("cdc", "lake") for _ in range(3)]
        + [("pipeline_recovered", "cdc")] * 2
        + [("pipeline_recovered", "lake")] * 3
    )
    assert {d["status"] for d in deliveries(settings)} == {"sent"}
