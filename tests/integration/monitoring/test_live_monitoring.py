"""Monitoring against a live workload: every dashboard panel's query returns data from the
real Prometheus, and faults are seen and survived.

Faults: each one is seen (a page reaches the on-call channels
through Prometheus, Alertmanager and ``alerts run``'s delivery) and survived (the part comes
back, and silver equals PostgreSQL: nothing lost, nothing doubled).

One live system serves the module: the generator writes the shop at a steady rate, the
streaming driver keeps a lake of its own, and ``alerts run`` delivers to an HTTP receiver
standing in for Slack and PagerDuty. Each test injects its fault, waits for its page, undoes
the fault and checks the recovery; none depends on another having run.

The times measured (fault to page, restart to resolved page, restart to silver equal to
PostgreSQL) are appended to ``<state>/faults.jsonl`` and quoted in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest

from api.auth import hash_key
from batch import metrics as batch_metrics
from producers.cdc.connectors import apply_connectors
from shopstream.settings import Settings
from shopstream.step_result import StepResult
from stack.kafka import Connect, Kafka
from stack.monitoring import Prometheus
from stack.postgres import Postgres
from tests.integration.conftest import HttpReceiver, Request, running_receiver
from tests.integration.pipeline import (
    LAST_QUERY,
    SHOPSTREAM,
    SILVER,
    kill_9,
    lake_rows,
    silver_actual,
    silver_expected,
    start_driver,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SLACK_PATH = "/slack"
PD_PATH = "/pagerduty/enqueue"
#: The issue's goal for a dead streaming driver; the other pages get the same bound.
PAGE_TIMEOUT_S = 120
RECOVER_TIMEOUT_S = 240
#: The slot alert's threshold for the Connect test only: what the slot holds when Connect
#: stops, plus a few seconds of the workload's WAL.
SLOT_WAL_MARGIN_BYTES = 512 * 1024
SLOT = "shopstream_cdc"
DASHBOARDS = Path(__file__).resolve().parents[3] / "monitoring" / "grafana" / "dashboards"


@dataclass
class Live:
    settings: Settings
    env: dict[str, str]
    root: Path
    lake: Path
    receiver: HttpReceiver
    driver: subprocess.Popen[bytes]
    generator: subprocess.Popen[bytes]
    alerts: subprocess.Popen[bytes]

    @property
    def driver_log(self) -> Path:
        return self.root / "driver.log"

    def tail(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def assert_alive(self) -> None:
        for name, proc in (("generator", self.generator), ("alerts", self.alerts)):
            assert proc.poll() is None, f"{name} exited ({proc.returncode}):\n{self.tail(name)}"

    def now(self) -> tuple[float, int]:
        """(monotonic time, requests received so far): a wait after it sees only newer ones."""
        with self.receiver.lock:
            return time.monotonic(), len(self.receiver.requests)

    def _requests(self, path: str, after: int) -> list[Request]:
        with self.receiver.lock:
            return [r for r in self.receiver.requests[after:] if r.path == path]

    def slack(self, headline: str, after: int = 0) -> list[Request]:
        """Slack messages whose headline starts with ``headline`` ("FIRING [warning] X")."""
        return [
            r
            for r in self._requests(SLACK_PATH, after)
            if r.body["text"].startswith(f"*{headline}")
        ]

    def pages(self, alertname: str, action: str, after: int = 0, **labels: str) -> list[Request]:
        """PagerDuty events of ``alertname`` whose labels include ``labels``."""
        return [
            r
            for r in self._requests(PD_PATH, after)
            if r.body["payload"]["class"] == alertname
            and r.body["event_action"] == action
            and labels.items() <= r.body["payload"]["custom_details"]["labels"].items()
        ]

    def _first(
        self, what: str, found: Callable[[], list[Request]], since: tuple[float, int]
    ) -> float:
        """Seconds from ``since`` to the first request ``found`` returns (waiting for one)."""

        def check() -> bool:
            self.assert_alive()
            return bool(found())

        wait(what, check, PAGE_TIMEOUT_S, every_s=0.5)
        return found()[0].at - since[0]

    def wait_slack(self, headline: str, since: tuple[float, int]) -> float:
        return self._first(f"Slack {headline!r}", lambda: self.slack(headline, since[1]), since)

    def wait_page(
        self, alertname: str, action: str, since: tuple[float, int], **labels: str
    ) -> float:
        return self._first(
            f"{action} page {alertname} {labels}",
            lambda: self.pages(alertname, action, since[1], **labels),
            since,
        )

    def converge(self, since: tuple[float, int]) -> float:
        """Pause the shop, wait until silver equals PostgreSQL, resume; seconds from ``since``."""
        self.generator.send_signal(signal.SIGSTOP)
        problems: list[str] = []
        try:

            def equal() -> bool:
                assert self.driver.poll() is None, f"driver died:\n{self.tail('driver')}"
                problems[:] = silver_differences(self.settings, self.lake)
                return not problems

            wait(
                "silver to equal PostgreSQL",
                equal,
                RECOVER_TIMEOUT_S,
                # Each check reads the whole lake and the shop: not too often, the cores are few.
                every_s=4,
                why=lambda: "; ".join(problems),
            )
            return time.monotonic() - since[0]
        finally:
            self.generator.send_signal(signal.SIGCONT)

    def record(self, fault: str, **seconds: float) -> None:
        figures = {"fault": fault, **{k: round(v, 1) for k, v in seconds.items()}}
        print(json.dumps(figures))
        with (self.settings.state_dir / "faults.jsonl").open("a") as out:
            out.write(json.dumps(figures) + "\n")


def wait(
    what: str,
    check: Callable[[], bool],
    timeout_s: float,
    every_s: float = 1.0,
    why: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every_s)
    pytest.fail(f"no {what} within {timeout_s} s {why()}".rstrip())


def silver_differences(settings: Settings, lake: Path) -> list[str]:
    """Per silver table: keys missing, extra or different (doubled keys collapse here:
    ``silver_duplicates`` counts those)."""
    try:
        actual = silver_actual(lake)
    except Exception as exc:  # a table not written yet, mid-commit reads: not equal yet
        return [f"the lake cannot be read yet: {exc}"]
    expected = silver_expected(settings)
    problems = []
    for table, want in expected.items():
        got = actual[table]
        missing = want.keys() - got.keys()
        extra = got.keys() - want.keys()
        wrong = [k for k in want.keys() & got.keys() if want[k] != got[k]]
        if missing or extra or wrong:
            problems.append(
                f"{table}: {len(missing)} missing, {len(extra)} extra, {len(wrong)} differ"
            )
    return problems


def silver_duplicates(lake: Path) -> dict[str, int]:
    """Current-state rows per key: more than one is a doubled change."""
    doubled = {}
    for module in SILVER:
        table = module.TABLE
        rows = [r for r in lake_rows(lake, table.qualified_name) if not r["is_deleted"]]
        keys = [tuple(r[k] for k in table.keys) for r in rows]
        if len(keys) != len(set(keys)):
            doubled[table.name] = len(keys) - len(set(keys))
    return doubled


def kill_tree(pid: int) -> None:
    """SIGKILL a server and every process it started, as a crash of its host would."""
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(pid)
        family = [parent, *parent.children(recursive=True)]
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(family, timeout=30)


def slot(settings: Settings) -> tuple[bool, int] | None:
    """(active, retained WAL bytes) of the connector's slot; None when it does not exist."""
    with psycopg.connect(settings.pg_conninfo, connect_timeout=5) as conn:
        row = conn.execute(
            "select active, coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)"
            " from pg_replication_slots where slot_name = %s",
            (SLOT,),
        ).fetchone()
    return None if row is None else (bool(row[0]), int(row[1]))


def connector_running(settings: Settings) -> bool:
    try:
        status = httpx.get(
            f"{settings.connect_rest_url}/connectors/shop-postgres/status", timeout=5
        )
    except httpx.HTTPError:
        return False
    if status.status_code != 200:
        return False
    body = status.json()
    states = [body["connector"]["state"], *(t["state"] for t in body["tasks"])]
    return len(states) > 1 and all(state == "RUNNING" for state in states)


@pytest.fixture(scope="module")
def live(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    settings = stack
    apply_connectors(settings, report=print)
    root = tmp_path_factory.mktemp("faults")
    lake = root / "lake"
    with running_receiver() as receiver:
        env = os.environ | {
            "SHOPSTREAM_LAKE_ROOT": str(lake),
            "SHOPSTREAM_STREAMS_TRIGGER_S": "1",
            "SHOPSTREAM_OPS_PG_DATABASE": "shopstream_ops_faults",
            "SHOPSTREAM_ALERTS_SLACK_WEBHOOK_URL": receiver.url(SLACK_PATH),
            "SHOPSTREAM_ALERTS_PAGERDUTY_ROUTING_KEY": "FAULTS-ROUTING-KEY",
            "SHOPSTREAM_ALERTS_PAGERDUTY_URL": receiver.url(PD_PATH),
            "SHOPSTREAM_ALERTS_COOLDOWN_S": "0",
        }
        logs = {n: (root / f"{n}.log").open("ab") for n in ("generator", "alerts")}
        generator = subprocess.Popen(
            [SHOPSTREAM, "generate", "--duration", "3600", "--rate", "10", "--no-clickstream"],
            env=env,
            stdout=logs["generator"],
            stderr=subprocess.STDOUT,
        )
        alerts = subprocess.Popen(
            [SHOPSTREAM, "alerts", "run"],
            env=env,
            stdout=logs["alerts"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        driver = start_driver(env, root / "driver.log")
        live = Live(settings, env, root, lake, receiver, driver, generator, alerts)
        try:
            wait(
                "streaming driver with every query started",
                lambda: f"started {LAST_QUERY}" in live.driver_log.read_text(),
                300,
            )
            live.converge(live.now())
            yield live
        finally:
            for proc in (generator, alerts):
                if proc.poll() is None:
                    proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=60)
            kill_9(live.driver)
            for log in logs.values():
                log.close()
            with psycopg.connect(settings.ops_server_conninfo("postgres"), autocommit=True) as c:
                c.execute("drop database if exists shopstream_ops_faults with (force)")


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard / panel title, PromQL) for every target of every committed dashboard."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                queries.append((f"{path.stem} / {panel['title']}", target["expr"]))
    return queries


def instant(settings: Settings, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{settings.prometheus_endpoint}/api/v1/query", params={"query": expr}, timeout=10
    ).json()
    assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
    return list(answer["data"]["result"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def push_batch_figures(settings: Settings) -> None:
    """What the daily batch pushes after a run, through its own code (batch.
    metrics): a full batch takes minutes, and tests/integration/batch runs it for real."""
    today = datetime.now(UTC).date()
    results = [StepResult("dbt", "success", 41.0), StepResult("quality", "success", 12.5)]
    for result in results:
        assert batch_metrics.push(
            settings, batch_metrics.step_registry(result), {"step": result.step}
        )
    scores = [
        batch_metrics.Score(today - timedelta(days=age), "silver.orders", 1.0) for age in range(3)
    ]
    recent = batch_metrics.recent_scores(scores)
    assert batch_metrics.push(
        settings, batch_metrics.quality_registry(recent), {"group": "quality"}
    )
    run = batch_metrics.run_registry(today, results)
    assert batch_metrics.push(settings, run, {"group": "run"})


def test_every_dashboard_panel_returns_data(live: Live) -> None:
    """A panel whose metric does not exist, or whose query is wrong, fails here."""
    queries = panel_queries()
    assert len(queries) >= 20, f"only {len(queries)} panel queries found in {DASHBOARDS}"
    key = secrets.token_urlsafe(16)
    port = free_port()
    env = live.env | {
        "SHOPSTREAM_API_KEYS": json.dumps(
            [{"name": "t", "sha256": hash_key(key), "scopes": ["read"]}]
        )
    }
    with (live.root / "api.log").open("ab") as log:
        api = subprocess.Popen(
            [SHOPSTREAM, "api", "serve", "--port", str(port), "--no-access-log"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert api.poll() is None, f"the API exited:\n{live.tail('api')}"
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            return False

        wait("the API to answer", answers, 60, every_s=0.5)
        for _ in range(5):
            httpx.get(f"{base}/v1/alerts", headers={"X-API-Key": key}, timeout=10)
        push_batch_figures(live.settings)
        empty: list[str] = []

        def all_answer() -> bool:
            empty[:] = [
                f"{name}: {expr}" for name, expr in queries if not instant(live.settings, expr)
            ]
            return not empty

        wait("data for every panel", all_answer, 120, every_s=5, why=lambda: "\n".join(empty))
    finally:
        api.terminate()
        api.wait(timeout=60)


def push_scores(settings: Settings, table: str, scores: list[float]) -> None:
    """The batch's push after its quality step: ``scores`` newest first, one per run date."""
    today = datetime.now(UTC).date()
    rows = [
        batch_metrics.Score(today - timedelta(days=age), table, score)
        for age, score in enumerate(scores)
    ]
    registry = batch_metrics.quality_registry(batch_metrics.recent_scores(rows))
    assert batch_metrics.push(settings, registry, {"group": "quality"})


def test_a_quality_score_low_three_runs_in_a_row_pages_and_a_good_run_resolves(
    live: Live,
) -> None:
    table = "silver.faults_probe"
    before = live.now()
    push_scores(live.settings, table, [0.99, 0.90, 0.90])  # two low runs: no page yet
    time.sleep(3 * live.settings.monitoring_scrape_interval_s)
    assert live.slack("FIRING [warning] QualityScoreLow", before[1]) == []

    pushed = live.now()
    push_scores(live.settings, table, [0.90, 0.90, 0.90])
    to_page = live.wait_slack("FIRING [warning] QualityScoreLow", pushed)
    fixed = live.now()
    push_scores(live.settings, table, [1.0, 0.90, 0.90])
    to_resolve = live.wait_slack("RESOLVED [warning] QualityScoreLow", fixed)

    [page] = live.slack("FIRING [warning] QualityScoreLow", pushed[1])
    fields = page.body["attachments"][0]["fields"]
    labels = {f["title"]: f["value"] for f in fields}["Labels"]
    assert f"table={table}" in labels
    # A warning goes to Slack and email, never to PagerDuty.
    assert live.pages("QualityScoreLow", "trigger", before[1]) == []
    live.record("quality score under 0.95, third run", page=to_page, resolved=to_resolve)


def test_a_failed_batch_run_pages(live: Live) -> None:
    today = datetime.now(UTC).date()
    failed = [StepResult("dbt", "success", 40.0), StepResult("reconcile", "failed", 3.0)]
    pushed = live.now()
    assert batch_metrics.push(
        live.settings, batch_metrics.run_registry(today, failed), {"group": "run"}
    )
    to_page = live.wait_page("BatchRunFailed", "trigger", pushed, run_date=today.isoformat())
    fixed = live.now()
    assert batch_metrics.push(
        live.settings, batch_metrics.run_registry(today, failed[:1]), {"group": "run"}
    )
    to_resolve = live.wait_page("BatchRunFailed", "resolve", fixed)
    live.record("batch run failed", page=to_page, resolved=to_resolve)


def test_a_killed_streaming_driver_pages_and_a_restart_catches_up(live: Live) -> None:
    killed = live.now()
    kill_9(live.driver)

    to_page = live.wait_page("TargetDown", "trigger", killed, job="streams")
    restarted = live.now()
    live.driver = start_driver(live.env, live.driver_log)
    to_converge = live.converge(restarted)
    to_resolve = live.wait_page("TargetDown", "resolve", restarted, job="streams")

    assert to_page <= 90, f"the page took {to_page:.0f} s; the goal is 90 s"
    assert silver_duplicates(live.lake) == {}
    live.record("kill -9 streams driver", page=to_page, converged=to_converge, resolved=to_resolve)


def test_a_killed_kafka_broker_pages_and_nothing_is_lost_after_its_restart(live: Live) -> None:
    kafka = Kafka(live.settings)
    assert kafka.pid is not None, "the broker is not running"
    killed = live.now()
    kill_tree(kafka.pid)

    to_page = live.wait_page("TargetDown", "trigger", killed, job="kafka")
    restarted = live.now()
    assert kafka.start(), "the broker did not start again"
    kafka.wait_healthy()
    wait("the connector and its task to run", lambda: connector_running(live.settings), 120)
    to_converge = live.converge(restarted)
    to_resolve = live.wait_page("TargetDown", "resolve", restarted, job="kafka")

    assert live.driver.poll() is None, f"the driver died with the broker:\n{live.tail('driver')}"
    assert silver_duplicates(live.lake) == {}
    live.record("kill -9 Kafka broker", page=to_page, converged=to_converge, resolved=to_resolve)


def test_a_killed_postgresql_pages_and_its_replication_slot_survives(live: Live) -> None:
    postgres = Postgres(live.settings)
    assert postgres.pid is not None, "PostgreSQL is not running"
    before = slot(live.settings)
    assert before is not None, f"no slot {SLOT} before the fault"
    killed = live.now()
    kill_tree(postgres.pid)

    to_page = live.wait_page("PostgresDown", "trigger", killed)
    restarted = live.now()
    assert postgres.start(), "PostgreSQL did not start again"
    postgres.wait_healthy()
    after = slot(live.settings)
    wait("the connector and its task to run", lambda: connector_running(live.settings), 120)
    to_converge = live.converge(restarted)
    to_resolve = live.wait_page("PostgresDown", "resolve", restarted)

    assert after is not None, f"the slot {SLOT} did not survive the crash"
    assert silver_duplicates(live.lake) == {}
    live.record("kill -9 PostgreSQL", page=to_page, converged=to_converge, resolved=to_resolve)


def test_a_stopped_connect_pages_when_the_slot_holds_too_much_wal(live: Live) -> None:
    # Debezium attaches to its slot again by itself after a fault (PostgreSQL killed just
    # before, say), and its task can report RUNNING before it has: wait for it to hold it.
    seen: list[tuple[bool, int] | None] = [None]

    def in_use() -> bool:
        seen[0] = slot(live.settings)
        return seen[0] is not None and seen[0][0]

    wait(f"the slot {SLOT} in use", in_use, 120, why=lambda: f"(last seen: {seen[0]})")
    held = seen[0]
    assert held is not None
    # What an attached Debezium keeps varies (a few KiB caught up, MiBs just after a fault);
    # the lowered threshold sits a fixed margin above it.
    threshold = held[1] + SLOT_WAL_MARGIN_BYTES
    low = live.settings.model_copy(update={"monitoring_slot_wal_alert_bytes": threshold})
    connect = Connect(live.settings)
    Prometheus(low).prepare()
    Prometheus(low).reload()
    try:
        stopped = live.now()
        assert connect.stop(), "Connect was not running"

        to_page = live.wait_page("ReplicationSlotRetainsTooMuchWal", "trigger", stopped)
        retained = slot(live.settings)
        restarted = live.now()
        assert connect.start(), "Connect did not start again"
        connect.wait_healthy()
        wait("the connector and its task to run", lambda: connector_running(live.settings), 120)
        to_converge = live.converge(restarted)
        to_resolve = live.wait_page("ReplicationSlotRetainsTooMuchWal", "resolve", restarted)
    finally:
        Prometheus(live.settings).prepare()
        Prometheus(live.settings).reload()
        connect.start()

    assert retained is not None and retained[1] > threshold, (retained, threshold)
    assert silver_duplicates(live.lake) == {}
    live.record("Kafka Connect stopped", page=to_page, converged=to_converge, resolved=to_resolve)
