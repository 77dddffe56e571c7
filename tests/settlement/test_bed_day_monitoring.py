"""SPEC §6.6 bed-day monitoring page: figures by hand, the policy's length caps, and scope."""
import pytest
from django.urls import reverse

from alliances.models import InstitutionLevel
from tests import factories
from tests.settlement.engine_data import policy
from tests.settlement.inpatient_builders import D, bed_day_quota, case

URL = "admin:settlement_beddayquota_monitoring"


@pytest.fixture
def world(county, other_county):
    mine = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    neighbour = factories.institution(county=county, level=InstitutionLevel.SECONDARY)
    far = factories.institution(county=other_county, level=InstitutionLevel.SECONDARY)
    bed_day_quota(InstitutionLevel.SECONDARY, "精神", "200.00")
    person = factories.person()
    case(mine, person, "2025-01-01", "2025-01-31", bed_day="精神", total="7000.00", personal="1000.00")  # 30 days
    # 2025-02-01 → 2025-05-15: 27 + 31 + 30 + 15 = 103 days
    case(mine, person, "2025-02-01", "2025-05-15", bed_day="精神", total="20600.00", personal="2600.00")
    case(neighbour, person, "2025-06-01", "2025-06-11", bed_day="精神", total="2500.00", personal="500.00")  # 10 days
    case(far, person, "2025-06-01", "2025-06-05", bed_day="精神", total="800.00", personal="100.00")  # 4 days
    return {"mine": mine, "neighbour": neighbour, "far": far}


def rows_of(client, user, **query):
    client.force_login(user)
    response = client.get(reverse(URL), {"year": 2025, **query})
    assert response.status_code == 200
    return {row.unit_code: row for row in response.context["rows"]}


def test_figures_by_hand_for_the_city(client, make_user, world):
    rows = rows_of(client, make_user("city"))
    assert set(rows) == {world["mine"].code, world["neighbour"].code, world["far"].code}
    mine = rows[world["mine"].code]
    assert (mine.cases, mine.days) == (2, 133)
    assert mine.average_length_of_stay == D("66.50")  # 133 / 2
    assert mine.average_daily_cost == D("207.52")  # 27,600 / 133 = 207.518…
    assert mine.daily_cost_over_quota == D("7.52")  # 207.52 − 200
    assert (mine.cap_days, mine.over_cap_cases) == (90, 1)  # default cap 90: the 103-day stay
    neighbour = rows[world["neighbour"].code]
    assert (neighbour.average_length_of_stay, neighbour.average_daily_cost) == (D("10.00"), D("250.00"))
    assert neighbour.daily_cost_over_quota == D("50.00")  # 2,500 / 10 − 200


def test_the_policy_length_cap_is_used(client, make_user, world):
    policy("bed_day", psychiatric_cap_days=110)
    rows = rows_of(client, make_user("city"))
    assert (rows[world["mine"].code].cap_days, rows[world["mine"].code].over_cap_cases) == (110, 0)


def test_county_sees_its_county_and_hospital_its_institution(client, make_user, world, county, other_county):
    assert set(rows_of(client, make_user("county", county.code))) == {world["mine"].code, world["neighbour"].code}
    # Asking for another county does not widen a county user's view.
    assert set(rows_of(client, make_user("county", county.code), region=other_county.pk)) == {
        world["mine"].code, world["neighbour"].code,
    }
    assert set(rows_of(client, make_user("hospital", world["mine"].code))) == {world["mine"].code}


def test_health_commission_is_refused(client, make_user, world, county):
    client.force_login(make_user("health", county.code))
    assert client.get(reverse(URL), {"year": 2025}).status_code == 403


def test_linked_from_the_quota_changelist(client, make_user, world):
    client.force_login(make_user("city"))
    page = client.get(reverse("admin:settlement_beddayquota_changelist")).content.decode()
    assert reverse(URL) in page
