"""An automatic rollback end to end, seen in a real browser: real model servers (the candidate fails 5× as
often) and a shadow behind outrider; the dashboard shows the controller's decision within 2 s of it, with the
e-value that crossed its threshold; then report.html opens from disk with the ROLLBACK banner and every
plot drawn as a non-empty SVG — and neither page logs a console error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from experiments.builder import Analysis, Canary, Compare, ExperimentDoc, Guardrail, Shadow, Variant
from tests.browser.conftest import Watched
from tests.integration.conftest import OutriderFactory
from tests.integration.test_decisions import drive_until, model_server
from tests.support.procs import Proc

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXPERIMENT = ExperimentDoc(
    "regression",
    (),
    Canary((20, 50)),
    prefix="/v2/models/digits",
    salt="browser-report",
    shadow=Shadow(sample=1.0, compare=Compare("oip-top1", agreement_min=0.99)),
    analysis=Analysis((Guardrail("error_rate", 1.2), Guardrail("latency_gmean", 1.5)), interval="200ms"),
)
PLOTS = ("plot-evalues", "plot-intervals", "plot-weights", "plot-latency", "plot-shadow")
DECISION_BUDGET_S = 2.0
# When the card's phase first reads rolled_back, by the browser's clock (the same host clock as the state's).
WATCH_PHASE = """() => {
  const card = document.querySelector('[data-experiment="regression"]');
  new MutationObserver(() => {
    if (card.dataset.phase === 'rolled_back' && window.rolledBackAt === undefined) {
      window.rolledBackAt = Date.now() / 1000;
    }
  }).observe(card, {attributes: true, attributeFilter: ['data-phase']});
}"""


@pytest.fixture
def servers(models_dir: Path, tmp_path: Path) -> Iterator[tuple[Proc, Proc, Proc]]:
    """fp32 failing 1% of requests as stable, int8 failing 5% as candidate, int8 as the shadow — its own
    server: copies of every request sent to the candidate's server would make the candidate slower too, and
    on a busy machine its latency guardrail could then roll it back before its errors do."""
    procs = (
        model_server(models_dir, tmp_path / "stable.log", "digits.onnx", 0.01, 1),
        model_server(models_dir, tmp_path / "candidate.log", "digits-int8.onnx", 0.05, 2),
        model_server(models_dir, tmp_path / "shadow.log", "digits-int8.onnx", 0.0, 3),
    )
    yield procs
    for proc in procs:
        proc.stop()


async def appears(path: Path, timeout: float = 10.0) -> bool:
    """Whether `path` exists within `timeout` s (the report is written in a thread after the decision)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_a_rollback_shows_on_the_dashboard_and_in_the_html_report(
    servers: tuple[Proc, Proc, Proc],
    outrider: OutriderFactory,
    models_dir: Path,
    tmp_path: Path,
    page: Watched,
) -> None:
    stable, candidate, shadow = servers
    data_dir = tmp_path / "data"
    variants = (
        Variant.stable(stable.url),
        Variant.candidate(candidate.url),
        Variant.shadow(shadow.url, "int8-shadow"),
    )
    proxy = outrider(EXPERIMENT.adding(*variants).yaml(), data_dir=data_dir)
    await page.page.goto(f"{proxy.admin_url}/dashboard")
    card = page.page.locator('[data-experiment="regression"]')
    await expect(card).to_have_attribute("data-phase", "progressing")
    await page.page.evaluate(WATCH_PHASE)

    state, _ = await drive_until(proxy, models_dir, "rolled_back")
    assert state["phase"] == "rolled_back", state
    decision = state["history"][-1]
    assert decision["decision"] == "ROLLBACK"
    seen_at = await page.page.evaluate("window.rolledBackAt")
    assert isinstance(seen_at, float)
    lag = seen_at - decision["at"]
    print(f"dashboard showed the controller's ROLLBACK {lag * 1000:.0f} ms after it was taken")
    assert 0 < lag <= DECISION_BUDGET_S
    await expect(card.locator(".body > .decision")).to_contain_text("ROLLBACK at")
    await expect(card.locator("ol.history li").first).to_contain_text("ROLLBACK: error_rate")
    # The harm e-value of error_rate crossed 1/(α/K) = 2/0.05 = 40, so its cell is marked as met.
    harm = card.locator("table tr", has_text="error_rate").locator("td").nth(2)
    await expect(harm).to_have_class("met")
    await expect(harm).to_contain_text("/ 40")
    await page.screenshot("-dashboard", full_page=False)

    report = data_dir / "reports" / "regression" / "report.html"
    assert await appears(report), f"no {report}"
    await page.page.goto(report.as_uri())
    banner = page.page.locator("#decision")
    await expect(banner.locator(".verdict")).to_contain_text("ROLLBACK")
    await expect(banner).to_contain_text("error_rate")
    for plot in PLOTS:
        svg = page.page.locator(f"figure#{plot} svg")
        assert await svg.count() >= 1, f"{plot}: no <svg>"
        drawn = await svg.first.evaluate("s => s.querySelectorAll('path, polyline, rect, circle').length")
        assert drawn > 0, f"{plot}: empty <svg>"
    await page.screenshot("-report")
    assert page.errors == []
