"""Headless Chromium from Debian's packages (``make browser``), driven by Playwright, for the
dashboard: the browser tests use ``chromium``; run as a script it takes the screenshots in
docs/screenshots/ from a running dashboard.

Playwright's own browser download cannot reach its servers from these machines and is never
used: Playwright launches /usr/bin/chromium, headless, with a fresh temporary profile (what
``launch`` does without a user data dir) and no background traffic.

    .venv/bin/python -m tests.browser --url http://127.0.0.1:8101 --key "$(shopstream api key)"
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECTIONS = ("sales", "customers", "stock", "quality", "pipeline")
#: Every chart of each section, by element id.
CHARTS = {
    "sales": ("chart-sales-revenue", "chart-sales-daily"),
    "customers": ("chart-customers-count", "chart-customers-revenue"),
    "stock": ("chart-stock-alerts", "chart-stock-cover"),
    "quality": ("chart-quality-scores",),
    "pipeline": ("chart-pipeline-freshness",),
}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


class NoBrowser(RuntimeError):
    """Chromium is not installed where the tests look for it."""


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium under Playwright, closed afterwards."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        raise NoBrowser(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_until_drawn(page: Page, timeout_ms: float = 30_000) -> None:
    """Every section loaded (``data-state`` ready) and every chart drawn by Plotly (an SVG
    with at least one trace in it)."""
    for section in SECTIONS:
        page.wait_for_selector(f"section#{section}[data-state=ready]", timeout=timeout_ms)
        for chart in CHARTS[section]:
            page.wait_for_selector(
                f"#{chart} .main-svg .trace", timeout=timeout_ms, state="attached"
            )


def take_screenshots(url: str, key: str, out: Path) -> list[Path]:
    """One PNG per section of the dashboard at ``url``."""
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
        page.goto(f"{url.rstrip('/')}/dashboard#key={key}")
        wait_until_drawn(page)
        # The sticky header would cover the top of each section's picture.
        page.add_style_tag(content="header { position: static !important; }")
        page.wait_for_timeout(1500)  # Plotly's transitions settle
        for section in SECTIONS:
            path = out / f"dashboard-{section}.png"
            page.locator(f"section#{section}").screenshot(path=str(path))
            shots.append(path)
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description="Screenshots of each dashboard section.")
    parser.add_argument("--url", required=True, help="The API's base URL")
    parser.add_argument("--key", required=True, help="An API key with the read scope")
    parser.add_argument("--out", type=Path, default=SCREENSHOTS)
    args = parser.parse_args()
    for path in take_screenshots(args.url, args.key, args.out):
        print(path)


if __name__ == "__main__":
    main()
