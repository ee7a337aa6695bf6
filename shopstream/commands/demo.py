"""`shopstream demo start | stop | info`: the live demo on top of the local stack."""

from __future__ import annotations

import typer
from rich.console import Console

from shopstream.commands._say import say
from shopstream.settings import get_settings
from shopstream.stack.jobs import Job, all_jobs
from shopstream.topics import CLICKSTREAM_TOPIC, cdc_topic

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


@app.command("start")
def start() -> None:
    """Start the demo workload in the background (idempotent)."""
    settings = get_settings()
    job = Job(settings, "generator")
    started = job.start(DEMO_WORKLOAD)
    say(f"generator: {'started' if started else 'already running'} (log: {job.logfile})")


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
    gen = jobs.get("generator")
    workload = f"running, pid {gen.pid}" if gen and gen.running() else "stopped"
    console.print(
        f"""
[bold]shopstream is running[/]

  PostgreSQL      postgresql://{s.pg_user}:<SHOPSTREAM_PG_PASSWORD>@{s.pg_host}:{s.pg_port}/{s.pg_database}
                  (local password: shopstream)   shell: shopstream db psql
  Kafka           {s.bootstrap_servers}
  Kafka Connect   {s.connect_rest_url}/connectors   (Debezium: shopstream connectors status)
  Change topics   {cdc_topic("orders")}, {cdc_topic("order_items")}, {cdc_topic("inventory")}, ...
  Clickstream     {CLICKSTREAM_TOPIC}   (watch it: shopstream clickstream tail)
  Workload        {workload}   log: {s.logs_dir / "generator.log"}
  State and logs  {s.state_dir}

  The CLI lives in the project's virtualenv:  source .venv/bin/activate  (or .venv/bin/shopstream)
  Stop everything:   shopstream down      (data is kept; `shopstream reset --yes` deletes it)
"""
    )
