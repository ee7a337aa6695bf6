"""`shopstream monitoring status | rules`: what Prometheus sees, and the alert rules."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.table import Table

from cli.commands._say import console, say
from shopstream.errors import ShopstreamError
from shopstream.settings import Settings, get_settings
from stack.monitoring import RULES, compose_files, render_rules

app = typer.Typer(no_args_is_help=True, help="Prometheus: targets, firing alerts, the rules.")


def _query(base: str, path: str) -> Any:
    try:
        response = httpx.get(f"{base}{path}", timeout=5)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ShopstreamError(
            f"cannot reach Prometheus at {base} ({exc}); is the stack up (`shopstream up`)?"
        ) from exc
    return response.json()["data"]


@app.command("status")
def status() -> None:
    """Show every scrape target with its health, and the alerts pending or firing."""
    base = get_settings().prometheus_endpoint
    targets = _query(base, "/api/v1/targets?state=active")["activeTargets"]
    table = Table("job", "target", "health", "last scrape", "error")
    for t in sorted(targets, key=lambda t: (t["labels"].get("job", ""), t["scrapeUrl"])):
        table.add_row(
            t["labels"].get("job", ""),
            t["scrapeUrl"],
            t["health"],
            t.get("lastScrape", "")[:19].replace("T", " "),
            t.get("lastError", ""),
        )
    console.print(table)
    alerts = _query(base, "/api/v1/alerts")["alerts"]
    if not alerts:
        say("no alert is pending or firing")
    for a in alerts:
        labels = a["labels"]
        scope = ", ".join(
            f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
        )
        say(f"{a['state']}: {labels['alertname']} [{labels.get('severity', '')}] {scope}")
    down = [t for t in targets if t["health"] != "up"]
    if down or any(a["state"] == "firing" for a in alerts):
        raise typer.Exit(1)


@app.command("rules")
def rules(
    write: bool = typer.Option(
        False,
        "--write",
        help="Rewrite monitoring/prometheus/rules.yml from its template, and the compose "
        "deployment's Prometheus and Alertmanager configs.",
    ),
) -> None:
    """Print the alert rules with this deployment's thresholds (or --write the committed
    files, which hold the defaults)."""
    if write:
        # The defaults, whatever this shell's SHOPSTREAM_MONITORING_* say.
        RULES.write_text(render_rules(Settings.model_construct()))
        say(f"wrote {RULES} (default thresholds); check it with `promtool check rules`")
        for path, text in compose_files().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            say(f"wrote {path}")
        return
    typer.echo(render_rules(get_settings()), nl=False)
