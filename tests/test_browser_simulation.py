"""A simulation's result page in a real (headless) Chromium: ECharts (vendored, no CDN) draws the bar
chart of the differences from the json_script data, the same numbers in the table under it (SPEC §11)."""
import pytest

from settlement.engine import simulation as sim
from settlement.engine.services import start_run
from tests.browser import SCREENSHOTS, browser_page, chromium  # noqa: F401  (fixture)
from tests.settlement.engine_data import policy
from tests.settlement.test_engine_runs import build_two_alliances

PASSWORD = "pw-Test-2026"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_difference_chart_is_drawn(live_server, transactional_db, make_user, chromium, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    build_two_alliances()
    policy()
    run = start_run("capitation", 2025, sync=True)
    simulation = sim.start_simulation(run, {"retention": "0.80"}, sync=True)
    user = make_user("city")
    requests = []
    with browser_page(chromium, timeout_ms=15_000) as page:
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("#login-form input[type=submit]")
        page.goto(f"{live_server.url}/admin/settlement/settlementrun/{run.pk}/change/")
        page.click("#simulate-link")
        assert "政策模拟" in page.title()
        page.goto(f"{live_server.url}/admin/settlement/simulation/{simulation.pk}/change/")
        page.wait_for_selector('#simulation-chart[data-rendered="1"] svg')
        chart_text = page.inner_text("#simulation-chart")
        assert "各单位年终清算金额差额" in chart_text
        # The table under the chart holds the same difference: A −50.00 (1,000.00 × 5 points).
        assert "\u221250.00" in page.inner_text("#simulation-units")
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "simulation_result.png"), full_page=True)
    assert not [url for url in requests if not url.startswith(live_server.url)]  # no CDN
