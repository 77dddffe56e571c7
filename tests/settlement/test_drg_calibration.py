"""SPEC §6.5 base-point 测算 put to use: preview against the catalogue, adoption into DrgGroup with history,
the CV review gate, roles, and the admin page — figures worked by hand.

History for 2025 = cases discharged 2023-01-01 .. 2024-12-31 (complete DRG stays only):

A01  1000, 1200 (2023), 1400, 1600, 9000 (2024): n=5, Q1 = x1 = 1200, Q3 = x3 = 1600, IQR = 400,
     fences [600, 2200] → 9000 trimmed; 4 cases, Σ 5200, mean 1300;
     deviations ±300, ±100 → variance (2·90000 + 2·10000) / 4 = 50000, sd 223.6068, CV 0.1720.
B02  2000, 4000: n=2, h1 = 0.25 → Q1 = 2500, h3 = 0.75 → Q3 = 3500, fences [1000, 5000]: both kept;
     mean 3000, sd 1000, CV 0.3333.
C03  100, 100, 2800: n=3, Q1 = 100, Q3 = 100 + 0.5 × 2700 = 1450, IQR 1350, upper fence 3475: all kept;
     mean 1000, variance (2·900² + 1800²) / 3 = 1,620,000, sd 1272.7922, CV 1.2728 > 1 → 需复核.
E05  5800: n=1, fences [5800, 5800]; mean 5800, CV 0.
Overall: 10 cases, Σ 5200 + 6000 + 3000 + 5800 = 20000 → average 2000, so base points = mean / 20:
A01 65.0000, B02 150.0000, C03 50.0000, E05 290.0000.
"""
import pytest
from django.urls import reverse

from settlement.engine.drg_calibration import CHANGE_REASON, adopt, calibration_params, preview
from settlement.engine.models import PaymentPolicy, RunStatus, SettlementRun
from settlement.engine.schemes.drg import DrgParams
from settlement.engine.services import SettlementError
from settlement.models import ApprovalStatus, DrgGroup
from tests import factories
from tests.settlement.engine_data import policy
from tests.settlement.inpatient_builders import D, case, group

YEAR = 2025
URL = "admin:settlement_drggroup_calibration"


@pytest.fixture
def history(county):
    inst = factories.institution(county=county)
    person = factories.person()

    def costs(drg, values, discharge):
        for value in values:
            case(inst, person, discharge, discharge, drg=drg, total=value, personal="0.00")

    costs("A01", ["1000", "1200"], "2023-03-10")
    costs("A01", ["1400", "1600", "9000"], "2024-03-10")
    costs("B02", ["2000", "4000"], "2024-05-10")
    costs("C03", ["100", "100", "2800"], "2023-07-10")
    costs("E05", ["5800"], "2024-09-10")
    costs("A01", ["99999"], "2025-02-10")  # the target year itself is not history
    costs("A01", ["99999"], "2022-12-31")  # three years back
    case(inst, person, "2024-03-01", "2024-03-10", drg="A01", total="99999", incomplete=True)  # incomplete stay

    # The 2025 catalogue holds A01 and C03; B02 exists only in 2024; E05 nowhere.
    group("A01", "60.0000", "1250.00", same_price=True)
    group("C03", "40.0000", "900.00", tcm=True)
    group("B02", "140.0000", "2800.00", year=2024, tcm=True, bed_day_points="1.5000")
    DrgGroup.objects.filter(year=2025, code="A01").update(name="阑尾切除术组")
    DrgGroup.objects.filter(year=2024, code="B02").update(name="胆囊切除术组")
    return inst


def figures(row):
    p = row.proposal
    return p.cases_before_trim, p.cases, p.average_cost, p.base_points, p.cv, p.cv_exceeded


def test_preview_by_hand(history):
    rows = {row.code: row for row in preview(YEAR, DrgParams())}
    assert list(rows) == ["A01", "B02", "C03", "E05"]
    assert figures(rows["A01"]) == (5, 4, D("1300.00"), D("65.0000"), D("0.1720"), False)
    assert figures(rows["B02"]) == (2, 2, D("3000.00"), D("150.0000"), D("0.3333"), False)
    assert figures(rows["C03"]) == (3, 3, D("1000.00"), D("50.0000"), D("1.2728"), True)
    assert figures(rows["E05"]) == (1, 1, D("5800.00"), D("290.0000"), D("0.0000"), False)

    a01 = rows["A01"]
    assert (a01.name, a01.name_source) == ("阑尾切除术组", "current")
    assert (a01.current_base_points, a01.current_average_cost) == (D("60.0000"), D("1250.00"))
    assert a01.change == D("5.0000") and a01.change_percent == D("8.33")  # 5 / 60 = 8.333…%
    assert rows["C03"].change == D("10.0000") and rows["C03"].change_percent == D("25.00")  # 50 − 40
    assert (rows["B02"].name, rows["B02"].name_source, rows["B02"].change) == ("胆囊切除术组", "previous", None)
    assert (rows["E05"].name, rows["E05"].name_source, rows["E05"].current_base_points) == ("E05", "code", None)


def test_parameters_come_from_the_approved_drg_policy(history):
    assert calibration_params(YEAR) == (DrgParams(), None)
    policy("drg", YEAR, approved=False, cv_threshold="1.3")
    assert calibration_params(YEAR)[1] is None  # a draft policy is not used
    PaymentPolicy.objects.filter(scheme="drg", year=YEAR).update(status=ApprovalStatus.APPROVED)
    params, used = calibration_params(YEAR)
    assert params.cv_threshold == D("1.3") and used is not None
    # C03's CV 1.2728 is within 1.3: no longer flagged, so it is adopted without confirmation.
    assert not {row.code: row for row in preview(YEAR)}["C03"].cv_exceeded
    assert adopt(None, YEAR, ["C03"])["updated"] == 1


def test_adoption_updates_and_creates_rows_with_history(history, make_user):
    city = make_user("city")
    summary = adopt(city, YEAR, ["A01", "B02", "E05"])
    assert summary == {"updated": 1, "created": 2, "unchanged": 0, "reviewed": 0}

    groups = {g.code: g for g in DrgGroup.objects.filter(year=YEAR)}
    a01 = groups["A01"]
    assert (a01.base_points, a01.average_cost) == (D("65.0000"), D("1300.00"))
    assert (a01.name, a01.same_price, a01.tcm_support, a01.bed_day_points) == ("阑尾切除术组", True, False, None)
    b02 = groups["B02"]  # name, flags and bed-day points from its 2024 row
    assert (b02.base_points, b02.average_cost) == (D("150.0000"), D("3000.00"))
    assert (b02.name, b02.tcm_support, b02.same_price, b02.bed_day_points) == ("胆囊切除术组", True, False, D("1.5000"))
    e05 = groups["E05"]
    assert (e05.name, e05.base_points, e05.average_cost, e05.tcm_support) == ("E05", D("290.0000"), D("5800.00"), False)
    assert groups["C03"].base_points == D("40.0000")  # not chosen: untouched

    for code, kind in (("A01", "~"), ("B02", "+"), ("E05", "+")):
        record = groups[code].history.order_by("-history_id").first()
        assert (record.history_type, record.history_change_reason, record.history_user) == (kind, CHANGE_REASON, city)
    assert DrgGroup.history.filter(history_change_reason=CHANGE_REASON).count() == 3

    # Adopting again writes nothing new: the figures are already the catalogue's.
    assert adopt(city, YEAR, ["A01"]) == {"updated": 0, "created": 0, "unchanged": 1, "reviewed": 0}
    assert DrgGroup.history.filter(history_change_reason=CHANGE_REASON).count() == 3


def test_cv_flagged_group_needs_explicit_confirmation(history, make_user):
    city = make_user("city")
    with pytest.raises(SettlementError, match="需复核后才能采纳：C03"):
        adopt(city, YEAR, ["A01", "C03"])
    # Nothing written, not even the unflagged A01.
    assert DrgGroup.objects.get(year=YEAR, code="A01").base_points == D("60.0000")
    assert DrgGroup.objects.get(year=YEAR, code="C03").base_points == D("40.0000")
    assert not DrgGroup.history.filter(history_change_reason=CHANGE_REASON).exists()

    # confirm_cv alone adopts nothing that was not chosen.
    assert adopt(city, YEAR, ["A01"], confirm_cv=True)["updated"] == 1
    assert DrgGroup.objects.get(year=YEAR, code="C03").base_points == D("40.0000")

    assert adopt(city, YEAR, ["C03"], confirm_cv=True) == {"updated": 1, "created": 0, "unchanged": 0, "reviewed": 1}
    c03 = DrgGroup.objects.get(year=YEAR, code="C03")
    assert (c03.base_points, c03.average_cost, c03.tcm_support) == (D("50.0000"), D("1000.00"), True)


@pytest.mark.parametrize("role", ["county", "health", "hospital", "auditor"])
def test_only_the_city_bureau_adopts(history, make_user, county, role):
    scope = {"county": county.code, "health": county.code, "hospital": history.code}.get(role)
    with pytest.raises(SettlementError, match="没有权限"):
        adopt(make_user(role, scope), YEAR, ["A01"])
    assert DrgGroup.objects.get(year=YEAR, code="A01").base_points == D("60.0000")


def test_refusals_write_nothing(history, make_user):
    city = make_user("city")
    with pytest.raises(SettlementError, match="请至少选择"):
        adopt(city, YEAR, [])
    with pytest.raises(SettlementError, match="Z99"):
        adopt(city, YEAR, ["A01", "Z99"])  # no history cases for Z99
    # The page showed other figures than the database now gives (cases imported in between).
    with pytest.raises(SettlementError, match="A01.*重新测算"):
        adopt(city, YEAR, ["A01"], expected={"A01": D("64.0000")})
    assert DrgGroup.objects.get(year=YEAR, code="A01").base_points == D("60.0000")
    assert adopt(city, YEAR, ["A01"], expected={"A01": D("65.0000")})["updated"] == 1


def test_empty_history_is_refused_in_chinese(db):
    with pytest.raises(SettlementError, match="2028至2029年没有可用于测算的DRG病例"):
        preview(2030)
    with pytest.raises(SettlementError, match="2028至2029年没有可用于测算的DRG病例"):
        adopt(None, 2030, ["A01"])


# --- The admin page -----------------------------------------------------------------------------


def test_page_shows_the_proposals(client, make_user, history):
    client.force_login(make_user("city"))
    response = client.get(reverse(URL), {"year": YEAR})
    assert response.status_code == 200
    page = response.content.decode()
    for figure in ("65.0000", "60.0000", "+5.0000", "+8.33%", "1300.00", "150.0000", "胆囊切除术组",
                   "290.0000", "1.2728", "需复核", "采纳所选", "2023年1月1日至2024年12月31日"):
        assert figure in page, figure
    rows = {row.code: row for row in response.context["rows"]}
    assert rows["A01"].proposal.base_points == D("65.0000")
    # Unflagged groups start chosen, the flagged C03 does not.
    assert response.context["chosen"] == {"A01", "B02", "E05"}
    assert 'class="proposal needs-review" data-code="C03"' in page


def test_post_adopts_and_reports_counts(client, make_user, history):
    client.force_login(make_user("city"))
    shown = {"shown_A01": "65.0000", "shown_E05": "290.0000", "shown_C03": "50.0000"}
    response = client.post(reverse(URL), {"year": YEAR, "codes": ["A01", "E05"], **shown}, follow=True)
    assert response.redirect_chain[-1][0] == f"{reverse(URL)}?year={YEAR}"
    page = response.content.decode()
    assert "2025年度已采纳2个病组的基准点数测算结果：更新1个、新增1个" in page
    assert DrgGroup.objects.get(year=YEAR, code="A01").base_points == D("65.0000")
    assert DrgGroup.objects.get(year=YEAR, code="E05").base_points == D("290.0000")

    # The flagged group without the confirmation box: refused on the page, nothing written, choice kept.
    response = client.post(reverse(URL), {"year": YEAR, "codes": ["C03"], **shown})
    assert response.status_code == 200
    assert "需复核后才能采纳" in response.content.decode()
    assert response.context["chosen"] == {"C03"}
    assert DrgGroup.objects.get(year=YEAR, code="C03").base_points == D("40.0000")

    response = client.post(reverse(URL), {"year": YEAR, "codes": ["C03"], "confirm_cv": "1", **shown}, follow=True)
    assert "经复核确认的变异系数超限病组" in response.content.decode()
    assert DrgGroup.objects.get(year=YEAR, code="C03").base_points == D("50.0000")


def test_county_reads_but_cannot_adopt(client, make_user, history, county):
    client.force_login(make_user("county", county.code))
    response = client.get(reverse(URL), {"year": YEAR})
    assert response.status_code == 200
    page = response.content.decode()
    assert "65.0000" in page and "采纳所选" not in page and "仅市医保局可以采纳" in page
    response = client.post(reverse(URL), {"year": YEAR, "codes": ["A01"], "shown_A01": "65.0000"})
    assert response.status_code == 200 and "没有权限" in response.content.decode()
    assert DrgGroup.objects.get(year=YEAR, code="A01").base_points == D("60.0000")


def test_auditor_reads_but_cannot_adopt(client, make_user, history):
    client.force_login(make_user("auditor"))
    response = client.get(reverse(URL), {"year": YEAR})
    assert response.status_code == 200 and "65.0000" in response.content.decode()
    assert "采纳所选" not in response.content.decode()
    response = client.post(reverse(URL), {"year": YEAR, "codes": ["A01"], "shown_A01": "65.0000"})
    assert response.status_code == 200 and "没有权限" in response.content.decode()
    assert DrgGroup.objects.get(year=YEAR, code="A01").base_points == D("60.0000")


def test_page_warns_when_the_year_is_already_settled(client, make_user, history):
    client.force_login(make_user("city"))
    assert "calibration-settled" not in client.get(reverse(URL), {"year": YEAR}).content.decode()
    SettlementRun.objects.create(scheme="drg", year=YEAR, status=RunStatus.COMPUTED)
    assert "calibration-settled" not in client.get(reverse(URL), {"year": YEAR}).content.decode()
    SettlementRun.objects.create(scheme="drg", year=YEAR, version=2, status=RunStatus.APPROVED)
    page = client.get(reverse(URL), {"year": YEAR}).content.decode()
    assert "calibration-settled" in page and "已有审核通过的DRG清算" in page


@pytest.mark.parametrize("role", ["health", "hospital"])
def test_other_roles_are_refused(client, make_user, history, county, role):
    scope = {"health": county.code, "hospital": history.code}.get(role)
    client.force_login(make_user(role, scope))
    assert client.get(reverse(URL), {"year": YEAR}).status_code == 403
    assert client.post(reverse(URL), {"year": YEAR, "codes": ["A01"], "shown_A01": "65.0000"}).status_code == 403
    assert DrgGroup.objects.get(year=YEAR, code="A01").base_points == D("60.0000")


def test_page_says_when_there_is_no_history(client, make_user, db):
    client.force_login(make_user("city"))
    response = client.get(reverse(URL), {"year": 2030})
    assert response.status_code == 200
    assert "2028至2029年没有可用于测算的DRG病例" in response.content.decode()
    assert response.context["rows"] is None


def test_linked_from_the_catalogue_changelist(client, make_user, county):
    client.force_login(make_user("city"))
    assert reverse(URL) in client.get(reverse("admin:settlement_drggroup_changelist")).content.decode()
    client.force_login(make_user("hospital", factories.institution(county=county).code))
    page = client.get(reverse("admin:settlement_drggroup_changelist"))
    assert page.status_code == 200 and reverse(URL) not in page.content.decode()

