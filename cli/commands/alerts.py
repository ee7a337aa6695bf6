"""`shopstream alerts ...`: the live low-stock alert engine and its delivery (issue 5)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from alerts.delivery.channels import notifiers_from_settings
from alerts.delivery.monitoring_alerts import webhook
from alerts.delivery.notices import SEVERITIES, Notice, send_notice
from alerts.engine.changes import TOPICS
from alerts.engine.consumer import MAX_BATCH, Engine, Progress
from alerts.engine.rebuild import rebuild as rebuild_state
from alerts.metrics import DeliveryMetrics, engine_registry
from alerts.ops_db import connect, ensure_ops_database
from cli.commands._say import console, say
from shopstream.errors import ShopstreamError
from shopstream.kafka_io import end_offsets
from shopstream.observability import MetricsServer, PostRoute
from shopstream.settings import AlertsSettings, get_settings
from stack.monitoring import WEBHOOK_PATH

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

app = typer.Typer(no_args_is_help=True, help="Low-stock alerts: the live engine and delivery.")


@app.command("run")
def run(
    deliver: bool = typer.Option(
        True, "--deliver/--no-deliver", help="Also deliver notifications (in a thread)."
    ),
    progress_every: float = typer.Option(
        30.0, "--progress-every", min=0.5, help="Seconds between progress lines."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1, help="At most this many records per transaction [5000]."
    ),
) -> None:
    """Run the alert engine (and the deliverer) until SIGTERM/SIGINT."""
    settings = get_settings(AlertsSettings)
    ensure_ops_database(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        say(f"received {signal.Signals(signum).name}: stopping after the current batch")
        stop.set()

    deliver_forever = _deliverer() if deliver else None
    if deliver:
        _check_delivery_config(settings)
        # The deliverer reports each notification through logging; show them in the job log.
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        # Each notification is logged once by the deliverer; not again per HTTP request.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    failures: list[BaseException] = []
    deliverer = None
    servers = []
    channels = notifiers_from_settings(settings) if deliver_forever is not None else {}
    delivery_metrics = DeliveryMetrics(channels)
    if deliver_forever is not None:
        servers.append(_deliverer_server(settings, delivery_metrics))
        deliverer = _start_deliverer(deliver_forever, settings, stop, failures, delivery_metrics)
    last = {"records": 0, "at": time.monotonic()}

    def on_progress(p: Progress) -> None:
        now = time.monotonic()
        rate = (p.records - last["records"]) / max(now - last["at"], 1e-9)
        last.update(records=p.records, at=now)
        lag = "unknown" if p.lag is None else str(p.lag)
        say(
            f"applied {p.records} records ({rate:.0f}/s), {p.transitions} transitions, "
            f"{p.rejected} rejected; lag {lag}"
        )

    say(
        f"alert engine: {settings.bootstrap_servers} -> "
        f"{settings.ops_pg_host}:{settings.ops_pg_port}/{settings.ops_pg_database}"
        + ("" if deliver else " (delivery off)")
    )
    engine = Engine(
        settings,
        report=say,
        on_progress=on_progress,
        progress_every_s=progress_every,
        max_batch=batch_size or MAX_BATCH,
    )
    servers.append(
        _serve_metrics(
            settings,
            "alerts-engine",
            engine_registry(lambda: engine.progress),
            settings.alerts_engine_metrics_port,
        )
    )
    clean = False
    try:
        engine.run(stop)
        clean = not failures
    finally:
        stop.set()
        if deliverer is not None:
            deliverer.join(timeout=30)
        for server in servers:
            # Stopped on purpose: Prometheus forgets these targets; a crash keeps them, so
            # that the missing engine or deliverer pages.
            server.stop(deliberate=clean)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    p = engine.progress
    say(f"stopped: {p.records} records applied, {p.transitions} transitions")
    if failures:
        raise ShopstreamError(f"the deliverer failed: {failures[0]}")


def _serve_metrics(
    settings: AlertsSettings,
    job: str,
    registry: CollectorRegistry,
    port: int,
    posts: dict[str, PostRoute] | None = None,
) -> MetricsServer:
    server = MetricsServer(settings, job, registry, port, posts).start()
    say(f"{job}: metrics at http://{settings.metrics_host}:{server.port}/metrics")
    return server


def _deliverer_server(settings: AlertsSettings, metrics: DeliveryMetrics) -> MetricsServer:
    """The deliverer's /metrics, and Alertmanager's webhook into its queue."""
    return _serve_metrics(
        settings,
        "alerts-deliverer",
        metrics.registry,
        settings.alerts_http_port,
        {WEBHOOK_PATH: webhook(settings, metrics.received)},
    )


def _deliverer() -> Callable[[AlertsSettings, threading.Event, DeliveryMetrics], None]:
    try:
        # Lazy on purpose: a deployment whose delivery cannot be imported still runs the
        # engine with --no-deliver, and says so here instead of failing at startup.
        from alerts.delivery.worker import run_forever
    except ImportError as exc:
        raise ShopstreamError(
            f"alert delivery is not available ({exc}); run with --no-deliver", exit_code=2
        ) from exc
    return run_forever


def _check_delivery_config(settings: AlertsSettings) -> None:
    """A bad route or channel setting fails now, in one line, before the engine starts."""
    # Lazy like `_deliverer`'s import of the same module.
    from alerts.delivery.worker import check_config

    check_config(settings)


def _start_deliverer(
    run_forever: Callable[[AlertsSettings, threading.Event, DeliveryMetrics], None],
    settings: AlertsSettings,
    stop: threading.Event,
    failures: list[BaseException],
    metrics: DeliveryMetrics,
) -> threading.Thread:
    def target() -> None:
        try:
            run_forever(settings, stop, metrics)
        except BaseException as exc:
            # Without delivery the engine would run on silently: stop everything instead,
            # so a supervisor sees the failure and restarts the pair.
            failures.append(exc)
            say(f"the deliverer failed: {exc}; stopping")
            stop.set()

    thread = threading.Thread(target=target, name="alerts-deliverer", daemon=True)
    thread.start()
    return thread


@app.command("status")
def status() -> None:
    """Show the engine's liveness, its lag per partition, and the open alerts by severity."""
    settings = get_settings(AlertsSettings)
    ensure_ops_database(settings)
    with connect(settings) as conn:
        engine_row = conn.execute(
            "select last_batch_at, last_heartbeat_at, last_change_at, records_applied "
            "from alerting.engine_status where id = 1"
        ).fetchone()
        stored = {
            (t, p): o
            for t, p, o in conn.execute(
                "select topic, partition, next_offset from alerting.consumer_offsets"
            ).fetchall()
        }
        by_severity: dict[str, int] = dict(
            conn.execute(
                "select severity, count(*) from alerting.alerts where status = 'open' "
                "group by severity"
            ).fetchall()
        )
        rejected_row = conn.execute("select count(*) from alerting.rejected_records").fetchone()

    now = datetime.now(UTC)
    if engine_row is None:
        say("engine: has not applied anything yet")
    else:
        batch_at, beat_at, change_at, applied = engine_row
        say(f"engine: {applied} records applied; last batch {_ago(batch_at, now)}")
        say(f"newest Debezium heartbeat applied: {_ago(beat_at, now)}")
        say(f"newest stock change applied (committed): {_ago(change_at, now)}")
    table = Table("topic", "partition", "next offset", "end offset", "lag")
    for topic in TOPICS:
        try:
            ends = end_offsets(settings.bootstrap_servers, topic, timeout_s=5)
        except Exception as exc:  # confluent-kafka raises several types; all mean unreachable
            raise ShopstreamError(
                f"cannot read end offsets from Kafka at {settings.bootstrap_servers}: {exc}"
            ) from exc
        for partition, end in sorted(ends.items()):
            position = stored.get((topic, partition))
            lag = "" if position is None else str(max(end - position, 0))
            table.add_row(
                topic, str(partition), "-" if position is None else str(position), str(end), lag
            )
    console.print(table)
    counts = ", ".join(f"{s} {by_severity.get(s, 0)}" for s in ("critical", "high", "warning"))
    say(f"open alerts: {counts}; rejected records: {rejected_row[0] if rejected_row else 0}")


def _ago(at: Any, now: datetime) -> str:
    if at is None:
        return "never"
    seconds = (now - at).total_seconds()
    return f"{seconds:.1f} s ago ({at:%Y-%m-%d %H:%M:%S} UTC)"


@app.command("rebuild")
def rebuild(
    yes: bool = typer.Option(False, "--yes", help="Confirm: recompute every projection."),
) -> None:
    """Recompute the alert state from the earliest offsets (acks and delivery log are kept)."""
    if not yes:
        raise ShopstreamError(
            "rebuild replaces the alert state with a replay of the log; "
            "run it again with --yes to confirm",
            exit_code=2,
        )

    settings = get_settings(AlertsSettings)
    ensure_ops_database(settings)
    say(f"rebuilding the alert state in {settings.ops_pg_database} from the log")
    summary = rebuild_state(settings, say)
    cursor = (
        "" if summary.delivery_cursor is None else f"; delivery cursor at {summary.delivery_cursor}"
    )
    say(
        f"rebuilt from {summary.records} records: {summary.transitions} transitions "
        f"({summary.kept_seq} kept their seq), {summary.alerts_open} open alerts, "
        f"{summary.rejected} rejected{cursor}"
    )


@app.command("send")
def send(
    summary: str = typer.Option(..., "--summary", help="The one-line message."),
    severity: str = typer.Option(
        "info", "--severity", help="info, warning, critical (also pages) or resolved."
    ),
    detail: str = typer.Option("", "--detail", help="More text under the summary."),
    dedup_key: str = typer.Option(
        "", "--dedup-key", help="PagerDuty incident key (critical opens it, resolved closes it)."
    ),
) -> None:
    """Send one notice to every configured channel (for schedulers and operators)."""
    if severity not in SEVERITIES:
        raise ShopstreamError(
            f"--severity must be one of {', '.join(SEVERITIES)}, not {severity!r}", exit_code=2
        )
    if not summary.strip():
        raise ShopstreamError("--summary must not be empty", exit_code=2)
    settings = get_settings(AlertsSettings)
    notice = Notice(severity, summary, detail, dedup_key)  # type: ignore[arg-type]
    results = send_notice(settings, notice, report=say)
    if not results:
        raise ShopstreamError(
            "no alert channel is configured (SHOPSTREAM_ALERTS_SLACK_WEBHOOK_URL, "
            "SHOPSTREAM_ALERTS_SMTP_HOST + SHOPSTREAM_ALERTS_EMAIL_TO, "
            "SHOPSTREAM_ALERTS_PAGERDUTY_ROUTING_KEY)"
        )
    for result in results:
        say(f"{result.channel}: {result.status}" + (f" ({result.error})" if result.error else ""))
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)
