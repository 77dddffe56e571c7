"""The DRG 运行分析 page in headless Chromium as the city and a hospital user: ECharts (vendored) draws
the quadrant and the trend lines with non-zero size; screenshots go to tests/screenshots (git-ignored)."""
import pytest

from alliances.models import InstitutionLevel
from tests import factories
from tests.browser import SCREENSHOTS, browser_page, chromium  # noqa: F401  (fixture)
from tests.settlement.inpatient_builders import case, group

PASSWORD = "pw-Test-2026"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def build():
    county = factories.region("330502", "吴兴区")
    hospitals = [factories.institution(county=county, level=level, name=name) for level, name in [
        (InstitutionLevel.TERTIARY, "市第一人民医院"), (InstitutionLevel.SECONDARY, "吴兴区人民医院"),
        (InstitutionLevel.SECONDARY, "吴兴区中医院"),
    ]]
    group("G1", "80.0000", "8000.00")
    group("G2", "150.0000", "15000.00")
    group("G3", "300.0000", "30000.00")
    p = factories.person(county=county)
    # the first treats the heavy groups at high cost, the third the light ones cheaply
    mix = {0: [("G3", "36000.00", 12), ("G3", "33000.00", 10), ("G2", "17000.00", 7)],
           1: [("G2", "15000.00", 6), ("G1", "8000.00", 5), ("G2", "14000.00", 6)],
           2: [("G1", "6000.00", 4), ("G1", "6500.00", 4), ("G1", "7000.00", 3), ("G2", "12000.00", 5)]}
    for index, cases in mix.items():
        for month, (drg, total, stay) in enumerate(cases, start=1):
            case(hospitals[index], p, f"2025-{month:02d}-01", f"2025-{month:02d}-{1 + stay:02d}", drg=drg, total=total)
    return hospitals


def open_page(page, base, user, name):
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form input[type=submit]")
    page.goto(f"{base}/admin/")
    page.click("text=DRG运行分析")
    for chart in ("#drg-quadrant", "#drg-trend"):
        page.wait_for_selector(f'{chart}[data-rendered="1"] svg')
        box = page.locator(f"{chart} svg").first.bounding_box()
        assert box["width"] > 0 and box["height"] > 0
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
    return page.inner_text("#drg-institutions"), page.inner_text("#drg-quadrant")


def test_the_drg_page_draws_its_charts_for_the_city_and_a_hospital(live_server, transactional_db, make_user,
                                                                   chromium, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    hospitals = build()
    city, hospital = make_user("city"), make_user("hospital", hospitals[2].code)
    requests = []
    with browser_page(chromium, timeout_ms=15_000) as page:
        page.on("request", lambda request: requests.append(request.url))
        table, chart = open_page(page, live_server.url, city, "drg_analysis_city.png")
        assert "市第一人民医院" in table and "统筹池平均" in table and "市第一人民医院" in chart
    with browser_page(chromium, timeout_ms=15_000) as page:
        table, chart = open_page(page, live_server.url, hospital, "drg_analysis_hospital.png")
        assert "吴兴区中医院" in table and "统筹池平均" in table
        assert "市第一人民医院" not in table + chart and "吴兴区人民医院" not in table + chart
    assert not [url for url in requests if not url.startswith(live_server.url)]  # no CDN
