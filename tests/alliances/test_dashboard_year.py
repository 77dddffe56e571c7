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


# --- KPI states (issue 18, finding 4) ----------------------------------------------------------


@pytest.fixture
def claims_in(city_client, county):
    """One 2024 and one 2025 普通门诊 claim at the alliance's lead hospital; nothing later."""
    import datetime
    from decimal import Decimal

    from alliances.models import Institution
    from settlement.models import OutpatientClaim, VisitType

    lead = Institution.objects.get(code="H33050200001")
    person = factories.person(county=county)
    for serial, day in (("K1", datetime.date(2024, 5, 1)), ("K2", datetime.date(2025, 5, 1))):
        OutpatientClaim.objects.create(
            institution=lead, serial=serial, person=person, visit_date=day, insurance_type=person.insurance_type,
            visit_type=VisitType.GENERAL, total_cost=Decimal("110.00"), fund_paid=Decimal("100.00"),
            personal_paid=Decimal("10.00"),
        )
    # The dashboard reads the KPI pre-aggregates; ORM-created claims need a rebuild (imports refresh them).
    from settlement.kpi_aggregates.services import rebuild_year

    for year in (2024, 2025):
        rebuild_year(year)
    return city_client


def _rows(response, label):
    return [row for block in response.context["alliance_blocks"] for row in block["kpis"] if row["label"] == label]


def test_opens_on_the_latest_year_with_data(claims_in):
    # Claims end in 2025: the page opens there, not on an empty current year.
    assert timezone.localdate().year > 2025
    assert claims_in.get(URL).context["year"] == 2025


def test_a_year_without_data_says_no_data_never_met(claims_in):
    response = claims_in.get(URL, {"year": "2026"})
    # 2026 has no care at all: growth against 2025 is 无数据, not −100.00 and 达标 (target 不高于 8).
    (growth,) = _rows(response, "医疗总费用增长率（%）")
    assert (growth["value"], growth["attainment"], growth["state"]) == (None, None, "无数据")
    (referrals,) = _rows(response, "转诊人次")
    assert referrals["state"] == "无数据"
    for block in response.context["alliance_blocks"]:
        for row in block["kpis"]:
            assert row["state"] != "达标" or row["value"] is not None
    body = response.content.decode()
    assert "-100.00" not in body


def test_attainment_is_always_a_percentage(claims_in):
    response = claims_in.get(URL, {"year": "2025"})
    # 2025 against 2024: total cost 110.00 both years → growth 0.00, within 不高于 8 → 100.00%, 达标.
    (growth,) = _rows(response, "医疗总费用增长率（%）")
    assert (str(growth["value"]), str(growth["attainment"]), growth["state"]) == ("0.00", "100.00", "达标")
    body = response.content.decode()
    assert "<td>100.00%</td>" in body and '<span class="kpi-met">达标</span>' in body
    import re
    cells = re.findall(r"<td>([^<]*)</td>\s*<td>(?:<span[^>]*>)?(达标|未达标|无数据|无目标)", body)
    assert cells and all(value == "—" or value.endswith("%") for value, _ in cells)
