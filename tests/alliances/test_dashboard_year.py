"""/admin/alliances/dashboard/?year=…: a year it cannot show gives this year's page and says why."""
import pytest
from django.utils import timezone

from tests import factories

URL = "/admin/alliances/dashboard/"


@pytest.fixture
def city_client(client, county, make_user):
    lead = factories.institution(county=county, code="H33050200001", name="吴兴区人民医院")
    factories.alliance(lead=lead, members=[factories.institution(county=county, code="H33050200002", name="织里镇卫生院")])
    client.force_login(make_user("city"))
    return client


@pytest.mark.parametrize("asked", ["0", "1999", "2101", "99999", "-5", "abc", "2025.5", "２０２５年"])
def test_bad_year_shows_this_year_with_a_chinese_warning(city_client, asked):
    this_year = timezone.localdate().year
    response = city_client.get(URL, {"year": asked})
    assert response.status_code == 200
    assert response.context["year"] == this_year
    body = response.content.decode()
    assert f"{this_year}年医共体总额付费监测" in body
    warning = f"年份“{asked}”无效（应为2000—2100之间的年份），已显示{this_year}年的数据"
    assert warning in body
    # Shown on this page only, not carried to the next one.
    assert "无效" not in city_client.get(URL).content.decode()


@pytest.mark.parametrize("asked", ["2000", "2025", "2100", " 2024 "])
def test_year_in_range_is_shown_without_a_warning(city_client, asked):
    response = city_client.get(URL, {"year": asked})
    assert response.status_code == 200
    assert response.context["year"] == int(asked)
    assert "无效" not in response.content.decode()


def test_no_year_is_this_year_without_a_warning(city_client):
    response = city_client.get(URL)
    assert response.context["year"] == timezone.localdate().year
    assert "无效" not in response.content.decode()
