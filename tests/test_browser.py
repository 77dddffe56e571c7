"""A city user logs in with a real (headless) Chromium and opens an institution, in Chinese."""
import pytest

from alliances.models import InstitutionLevel
from tests import factories
from tests.browser import SCREENSHOTS, browser_page, chromium  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_city_user_opens_an_institution(live_server, transactional_db, make_user, county, other_county, chromium):
    factories.institution(county=county, code="H33050200001", name="湖州市吴兴区人民医院", level=InstitutionLevel.SECONDARY)
    factories.institution(
        county=other_county, code="H33050300007", name="南浔区练市镇卫生院", level=InstitutionLevel.GRASSROOTS,
        grassroots_kind="乡镇卫生院",
    )
    user = make_user("city", username="shiyibaoju")
    with browser_page(chromium) as page:
        page.goto(f"{live_server.url}/admin/login/")
        assert "登录" in page.title()
        assert page.locator("label[for=id_username]").inner_text().startswith("用户名")
        page.fill("#id_username", user.username)
        page.fill("#id_password", "pw-Test-2026")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        assert page.locator("#site-name").inner_text() == "医保支付方式改革管理平台"

        page.goto(f"{live_server.url}/admin/alliances/institution/")
        rows = page.locator("#result_list tbody tr")
        assert rows.count() == 2
        assert page.locator("#result_list").get_by_text("南浔区练市镇卫生院").count() == 1

        page.get_by_role("link", name="H33050300007").click()
        page.wait_for_url("**/change/")
        assert page.locator("#content h1").inner_text() == "修改 定点医疗机构"
        assert page.locator("#content h2").first.inner_text() == "南浔区练市镇卫生院（H33050300007）"
        assert page.locator("#id_name").input_value() == "南浔区练市镇卫生院"
        assert page.locator("label[for=id_name]").inner_text().startswith("机构名称")
        assert page.locator("label[for=id_level]").inner_text().startswith("机构等级")
        assert page.locator("#id_grassroots_kind").input_value() == "乡镇卫生院"

        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "institution_change.png"), full_page=True)
