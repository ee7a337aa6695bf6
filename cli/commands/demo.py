"""`shopstream demo start | stop | info`: the live demo on top of the local stack."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import typer
from rich.console import Console

from api.auth import ensure_local_key
from cli.commands._say import say
from shopstream.errors import ShopstreamError
from shopstream.settings import Settings, get_settings
from shopstream.topics import CLICKSTREAM_TOPIC, cdc_topic
from stack.jobs import Job, all_jobs

app = typer.Typer(no_args_is_help=True, help="The live demo: a gentle workload and where to look.")
console = Console(highlight=False, soft_wrap=True)

#: A gentle shop: a few orders a second, with a little bad clickstream input to quarantine.
DEMO_WORKLOAD = [
    "generate",
    "--rate", "5",
    "--duration", str(7 * 24 * 3600),
    "--seed", "42",
    "--bad-fraction", "0.01",
]  # fmt: skip


#: Before the live workload, a fresh shop gets a week of history, so the daily batch has
#: yesterday to build and reconcile (`shopstream batch --date yesterday`).
DEMO_HISTORY = [
    "generate",
    "--backfill-days", "7",
    "--orders", "3000",
    "--seed", "7",
    "--no-clickstream",
]  # fmt: skip


#: The streaming pipeline: every query (bronze, cdc, clickstream) in one driver.
DEMO_STREAMS = ["streams", "run", "--progress-every", "30"]
#: The live alert engine over the inventory log, with delivery (channels are off until
#: configured, so the demo only logs what it would send).
DEMO_ALERTS = ["alerts", "run"]
#: The alert API.
DEMO_API = ["api", "serve"]
#: How long `demo start` watches the jobs it started before calling them up.
STARTUP_CHECK_S = 4.0
DEMO_JOBS = (
    ("generator", DEMO_WORKLOAD),
    ("streams", DEMO_STREAMS),
    ("alerts", DEMO_ALERTS),
    ("api", DEMO_API),
)


@app.command("start")
def start() -> None:
    """Start the workload, streams, alert engine and API in the background (idempotent)."""
    settings = get_settings()
    _ensure_history(settings)
    jobs = []
    for name, argv in DEMO_JOBS:
        job = Job(settings, name)
        started = job.start(argv)
        say(f"{name}: {'started' if started else 'already running'} (log: {job.logfile})")
        jobs.append(job)
    # A job that fails at start (a taken port, a bad setting) dies within seconds: say so now
    # rather than leave a demo that looks up and is not.
    time.sleep(STARTUP_CHECK_S)
    dead = [job for job in jobs if not job.running()]
    if dead:
        for job in dead:
            tail = job.logfile.read_text(errors="replace").strip().splitlines()[-5:]
            say(f"{job.name} exited at start; the end of {job.logfile}:")
            for line in tail:
                console.print(f"    {line}", markup=False)
        raise ShopstreamError(
            f"{', '.join(j.name for j in dead)} did not stay up; see the log lines above"
        )


def _ensure_history(settings: Settings) -> None:
    """Backfill a week of orders once, on a shop with nothing before today."""
    with psycopg.connect(settings.pg_conninfo) as conn:
        row = conn.execute(
            "select exists (select 1 from shop.orders where placed_at < current_date)"
        ).fetchone()
    if row is not None and row[0]:
        return
    say("backfilling a week of order history for the daily batch (once; ~30 s)")
    exe = Path(sys.executable).parent / "shopstream"
    done = subprocess.run([str(exe), *DEMO_HISTORY], capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise ShopstreamError(f"the history backfill failed: {' '.join(tail)}")


@app.command("stop")
def stop() -> None:
    """Stop the demo's background jobs; the stack keeps running."""
    for job in all_jobs(get_settings()):
        say(f"{job.name}: {'stopped' if job.stop() else 'was not running'}")


@app.command("info")
def info() -> None:
    """Print where to look: services, topics, jobs, logs and useful commands."""
    s = get_settings()
    jobs = {j.name: j for j in all_jobs(s)}
    api = f"http://{s.api_host}:{s.api_port}"
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()

    def state(name: str) -> str:
        job = jobs.get(name)
        return f"running, pid {job.pid}" if job and job.running() else "stopped"

    console.print(
        f"""
[bold]shopstream is running[/]

  PostgreSQL      postgresql://{s.pg_user}:<SHOPSTREAM_PG_PASSWORD>@{s.pg_host}:{s.pg_port}/{s.pg_database}
                  (local password: shopstream)   shell: shopstream db psql
  Kafka           {s.bootstrap_servers}
  Kafka Connect   {s.connect_rest_url}/connectors   (Debezium: shopstream connectors status)
  Change topics   {cdc_topic("orders")}, {cdc_topic("order_items")}, {cdc_topic("inventory")}, ...
  Clickstream     {CLICKSTREAM_TOPIC}   (watch it: shopstream clickstream tail)
  Workload        {state("generator")}   log: {s.logs_dir / "generator.log"}
  Streams         {state("streams")}   log: {s.logs_dir / "streams.log"}
                  (cdc and clickstream: Kafka -> Arrow -> silver and gold in each micro-batch,
                   seconds behind the shop once Spark has started; bronze every 30 s)
  Lake            {s.lake_path}   (Delta tables: bronze/, silver/, gold/)
                  tables:   shopstream lake list
                  gold:     shopstream lake show gold.sales_daily --limit 20
                            shopstream lake show gold.low_stock_alerts --where status=open
                            shopstream lake show gold.inventory_status --order-by days_of_cover
  Alert engine    {state("alerts")}   log: {s.logs_dir / "alerts.log"}
                  (live from the inventory log; shopstream alerts status)
  Dashboard       {dashboard_url(s)}
                  (sales, customers, stock, data quality, pipeline; served by the alert API.
                   The key travels in the URL fragment, which the browser never sends; the page
                   keeps it in the browser's local storage and sends it as X-API-Key)
  Alert API       {state("api")}   log: {s.logs_dir / "api.log"}
                  {api}/v1/alerts/low-stock?status=open     docs: {api}/docs
                  key:  {_api_key(s)}
                  curl -H "X-API-Key: $(shopstream api key)" "{api}/v1/alerts/low-stock?status=open"
                  live: curl -N -H "X-API-Key: $(shopstream api key)" {api}/v1/alerts/stream
                  (low-stock alerts appear within a few minutes: the workload's reorder points
                  are set so that busy products do run low)
  Daily batch     dbt marts + Great Expectations + reconciliation (stream = batch = source)
                  run it for yesterday, once the streams have caught up (a few minutes):
                    shopstream batch --date {yesterday}
                  keep its Spark warm between days (a small day in a third of the time):
                    shopstream batch-engine &     (then every `shopstream batch` runs in it)
                  marts:      shopstream lake show marts.agg_daily_sales -n 50
                  run record: shopstream lake show audit.batch_runs --order-by started_at --desc
                  reconciliation (the Kappa proof, key x measure):
                              shopstream lake show audit.reconciliation --where is_match=false
                  Data Docs:  {s.state_dir / "quality" / "data_docs" / "index.html"}
  Monitoring      Prometheus {s.prometheus_endpoint}   (targets, rules, alerts)
                  Alertmanager http://127.0.0.1:{s.alertmanager_port}   shopstream monitoring status
                  (what fires goes to the alert channels; dashboards as JSON in
                   monitoring/grafana, provisioned by docker-compose.yml)
  State and logs  {s.state_dir}

  The CLI lives in the project's virtualenv:  source .venv/bin/activate  (or .venv/bin/shopstream)
  Stop everything:   shopstream down      (data is kept; `shopstream reset --yes` deletes it)
"""
    )


def dashboard_url(settings: Settings) -> str:
    """The dashboard's address; locally with the generated key in the fragment (never sent
    to the server), so opening it is all it takes."""
    url = f"http://{settings.api_host}:{settings.api_port}/dashboard"
    if settings.api_keys.strip():
        return f"{url}   (it asks once for a key with the read scope)"

    return f"{url}#key={ensure_local_key(settings)}"


def _api_key(settings: Settings) -> str:
    """The local API key (created on first use), or how to configure one in prod."""
    if settings.api_keys.strip():
        return "configured in SHOPSTREAM_API_KEYS (hashes only; use your own key)"

    return ensure_local_key(settings)
