"""The DRG 运行分析 page and the KPI dashboard in headless Chromium as the city and a hospital user:
ECharts (vendored) draws the quadrant, the trend lines, the budget bars and each KPI's trend against
its target with non-zero size; the DRG institution table fits at 1,280 and 1,366 px. Screenshots go
to a tmp directory (printed), to be looked at."""
import datetime
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest

from alliances.models import InstitutionLevel
from settlement.analysis import aggregates
from settlement.kpi_aggregates.services import rebuild_year
from settlement.models import OutpatientClaim, VisitType
from tests import factories
from tests.browser import browser_page, chromium  # noqa: F401  (fixture)
from tests.settlement.inpatient_builders import case, group

PASSWORD = "pw-Test-2026"
SCREENSHOTS = Path(tempfile.gettempdir()) / "portal-analysis-screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def build():
    county = factories.region("330502", "吴兴区")
    hospitals = [factories.institution(county=county, level=level, name=name) for level, name in [
        (InstitutionLevel.TERTIARY, "市第一人民医院"), (InstitutionLevel.SECONDARY, "吴兴区人民医院"),
        (InstitutionLevel.SECONDARY, "吴兴区中医院"),
    ]]
    grassroots = factories.institution(county=county, level=InstitutionLevel.GRASSROOTS, name="织里镇卫生院")
    outside = factories.institution(county=factories.region("330503", "南浔区"), level=InstitutionLevel.TERTIARY,
                                    name="南浔区人民医院")
    factories.alliance(lead=hospitals[2], members=[grassroots])
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
    # Outpatient visits of the county's residents: some months mostly at home, some mostly outside,
    # so that 县域内就诊率 meets its 90% target in some months and misses it in others.
    serial = 0
    for year in (2024, 2025):
        for month in range(1, 13):
            at_home = 9 if month % 3 else 5
            for n in range(10):
                serial += 1
                where = (grassroots if n % 2 else hospitals[2]) if n < at_home else outside
                OutpatientClaim.objects.create(
                    institution=where, serial=f"B{serial}", person=p, visit_date=datetime.date(year, month, 1 + n),
                    insurance_type=p.insurance_type, visit_type=VisitType.GENERAL, total_cost=Decimal("100.00"),
                    fund_paid=Decimal("70.00"), personal_paid=Decimal("30.00"),
                )
    rebuild_year(2024)
    rebuild_year(2025)
    aggregates.rebuild_year(2025)
    return hospitals


def log_in(page, base, user):
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form input[type=submit]")


def drawn(page, selector):
    page.wait_for_selector(f'{selector}[data-rendered="1"] svg')
    box = page.locator(f'{selector}[data-rendered="1"] svg').first.bounding_box()
    assert box["width"] > 100 and box["height"] > 100, (selector, box)


def open_drg_page(page, base, user, name):
    log_in(page, base, user)
    page.goto(f"{base}/admin/")
    page.click("text=DRG运行分析")
    for chart in ("#drg-quadrant", "#drg-trend"):
        drawn(page, chart)
    assert "实时计算" not in page.content()  # read from the pre-aggregates
    for width in (1280, 1366):  # every column of the institution table in view, no sideways scroll
        page.set_viewport_size({"width": width, "height": 900})
        fits = page.evaluate("""() => {
            const table = document.getElementById('drg-institutions');
            const last = table.querySelector('thead th:last-child').getBoundingClientRect();
            return {overflow: table.parentElement.scrollWidth - table.parentElement.clientWidth,
                    right: last.right, width: window.innerWidth};
        }""")
        assert fits["overflow"] <= 0 and fits["right"] <= fits["width"], (width, fits)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
    return page.inner_text("#drg-institutions"), page.inner_text("#drg-quadrant")


def open_dashboard(page, base, name):
    page.goto(f"{base}/admin/alliances/dashboard/?year=2025")
    charts = page.locator(".budget-chart, .kpi-trend-chart")
    for index in range(charts.count()):  # drawn when scrolled into view
        charts.nth(index).scroll_into_view_if_needed()
    drawn(page, ".budget-chart")
    drawn(page, ".kpi-trend-chart")
    page.wait_for_function("""() => [...document.querySelectorAll('.budget-chart, .kpi-trend-chart')]
                                      .every(el => el.getAttribute('data-rendered') === '1')""")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
    page.locator(".dash-block").first.screenshot(path=str(SCREENSHOTS / name.replace(".png", "_first_block.png")))
    return page.inner_text("#content")


def test_the_drg_page_and_the_dashboard_draw_their_charts_for_the_city_and_a_hospital(
        live_server, transactional_db, make_user, chromium, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    SCREENSHOTS.mkdir(exist_ok=True)
    hospitals = build()
    city, hospital = make_user("city"), make_user("hospital", hospitals[2].code)
    requests = []
    with browser_page(chromium, timeout_ms=15_000) as page:
        page.on("request", lambda request: requests.append(request.url))
        table, chart = open_drg_page(page, live_server.url, city, "drg_analysis_city.png")
        assert "市第一人民医院" in table and "统筹池平均" in table and "市第一人民医院" in chart
        text = open_dashboard(page, live_server.url, "dashboard_city.png")
        assert "县域内就诊率（%）" in text and "吴兴区" in text and "南浔区" in text
    with browser_page(chromium, timeout_ms=15_000) as page:
        page.on("request", lambda request: requests.append(request.url))
        table, chart = open_drg_page(page, live_server.url, hospital, "drg_analysis_hospital.png")
        assert "吴兴区中医院" in table and "统筹池平均" in table
        assert "市第一人民医院" not in table + chart and "吴兴区人民医院" not in table + chart
        text = open_dashboard(page, live_server.url, "dashboard_hospital.png")
        assert "吴兴区" in text and "南浔区" not in text
    assert not [url for url in requests if not url.startswith(live_server.url)]  # no CDN
    print(f"screenshots: {SCREENSHOTS}")
