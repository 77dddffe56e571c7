"""The DRG 运行分析 page and its xlsx export, for every role (SPEC §1, §10)."""
import io

import pytest
from openpyxl import load_workbook

from alliances.models import InstitutionLevel
from tests import factories
from tests.settlement.inpatient_builders import case, group

URL = "/admin/settlement/drganalysis/"
POOL = "330502-二级及以上"
OTHER_POOL = "330503-二级及以上"


@pytest.fixture
def city(county, other_county):
    a = factories.institution(county=county, level=InstitutionLevel.TERTIARY, name="甲医院")
    b = factories.institution(county=county, level=InstitutionLevel.SECONDARY, name="乙医院")
    c = factories.institution(county=other_county, level=InstitutionLevel.SECONDARY, name="丙医院")
    group("G1", "100.0000", "10000.00")
    group("G2", "200.0000", "20000.00")
    p = factories.person()
    case(a, p, "2025-01-01", "2025-01-05", drg="G1", total="12000.00")
    case(a, p, "2025-02-01", "2025-02-09", drg="G2", total="30000.00")
    case(b, p, "2025-03-01", "2025-03-05", drg="G1", total="8000.00")
    case(c, p, "2025-04-01", "2025-04-05", drg="G1", total="10000.00")
    return a, b, c


def login(client, user):
    client.force_login(user)
    return client


def export(client, pool):
    response = client.get(URL, {"year": 2025, "pool": pool, "_export": "xlsx"})
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    return [[cell.value for cell in row] for row in sheet.iter_rows()][1:]


@pytest.mark.parametrize("role", ["city", "auditor"])
def test_city_wide_roles_see_every_institution_and_pool(client, make_user, city, role):
    a, b, c = city
    login(client, make_user(role))
    response = client.get(URL, {"year": 2025})
    html = response.content.decode()
    assert response.status_code == 200
    assert POOL in html and OTHER_POOL in html  # both pools in the picker
    assert "甲医院" in html and "乙医院" in html and "统筹池平均" in html
    assert "丙医院" not in html  # another pool's institution is not on this pool's page
    assert 'id="drg-quadrant"' in html and 'id="drg-trend"' in html
    # A: CMI (1 + 2)/2 = 1.5000; the pool (A, B): (1 + 2 + 1)/3 = 1.3333
    assert "1.5000" in html and "1.3333" in html
    assert [row[0] for row in export(client, POOL)] == [a.code, b.code, POOL]


def test_county_sees_its_own_pools_only(client, make_user, city, county):
    a, b, c = city
    login(client, make_user("county", county.code))
    html = client.get(URL, {"year": 2025}).content.decode()
    assert POOL in html and OTHER_POOL not in html and "丙医院" not in html
    response = client.get(URL, {"year": 2025, "pool": OTHER_POOL})
    assert response.status_code == 302  # refused with a message, nothing shown
    response = client.get(URL, {"year": 2025, "pool": OTHER_POOL, "_export": "xlsx"})
    assert response.status_code == 302
    assert [row[0] for row in export(client, POOL)] == [a.code, b.code, POOL]


def test_hospital_sees_itself_beside_the_pool_average_and_no_other_name(client, make_user, city):
    a, b, c = city
    login(client, make_user("hospital", a.code))
    html = client.get(URL, {"year": 2025}).content.decode()
    assert "甲医院" in html and "统筹池平均" in html
    assert "乙医院" not in html and b.code not in html and "丙医院" not in html
    # another institution's drill-down falls back to the pool, never showing that institution
    html = client.get(URL, {"year": 2025, "pool": POOL, "institution": b.pk}).content.decode()
    assert "乙医院" not in html and b.code not in html
    rows = export(client, POOL)
    assert [row[:2] for row in rows] == [[a.code, "甲医院"], [POOL, "统筹池平均"]]
    assert client.get(URL, {"year": 2025, "pool": OTHER_POOL}).status_code == 302


def test_health_commission_has_no_access(client, make_user, city, county):
    login(client, make_user("health", county.code))
    assert client.get(URL, {"year": 2025}).status_code == 403


def test_bad_year_gets_a_chinese_message(client, make_user, city):
    login(client, make_user("city"))
    response = client.get(URL, {"year": "abc"}, follow=True)
    assert "年度“abc”无效" in response.content.decode()


def test_linked_from_the_admin_home(client, make_user, city):
    login(client, make_user("hospital", city[0].code))
    html = client.get("/admin/").content.decode()
    assert "DRG运行分析" in html and URL in html


def test_group_drill_down_of_an_institution_leads_to_its_cases(client, make_user, city):
    import re

    from settlement.models import InpatientCase

    a, b, c = city
    login(client, make_user("city"))
    html = client.get(URL, {"year": 2025, "pool": POOL, "institution": a.pk}).content.decode()
    groups = html[html.index('id="drg-groups"'):html.index('id="drg-trend"')]
    # A's G1: one case of 12,000.00 against the city mean (12000 + 8000 + 10000)/3 = 10000 → 1.2000
    assert "12,000.00" in groups and "1.2000" in groups and "甲医院" in html[html.index('id="groups"'):]
    links = re.findall(r'href="([^"]*drg_code=G1[^"]*)"', groups)
    assert len(links) == 1
    listing = client.get(links[0].replace("&amp;", "&")).content.decode()
    a_case = InpatientCase.objects.get(institution=a, drg_code="G1")
    b_case = InpatientCase.objects.get(institution=b, drg_code="G1")
    assert a_case.serial in listing and b_case.serial not in listing


def test_a_hospital_starts_on_its_own_groups_and_can_switch_to_the_pools(client, make_user, city):
    a, b, c = city
    login(client, make_user("hospital", a.code))
    html = client.get(URL, {"year": 2025}).content.decode()
    assert "病组明细：甲医院" in html and "月度趋势：甲医院" in html
    html = client.get(URL, {"year": 2025, "institution": 0}).content.decode()
    assert f"病组明细：统筹池{POOL}" in html
