"""Pages of the policy simulation (SPEC §11): the 模拟 link and form, the result with chart data,
totals and differences, the xlsx export, the list per run, the comparison, and scope."""
import io
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import load_workbook

from settlement.engine import simulation as sim
from settlement.engine.services import start_run
from settlement.engine.simulation_models import Simulation
from tests import factories
from tests.settlement.engine_data import d, policy
from tests.settlement.test_engine_runs import build_two_alliances

pytestmark = pytest.mark.django_db
MINUS = "\u2212"


@pytest.fixture
def settled():
    county, a, b = build_two_alliances()
    policy()
    return a, b, start_run("capitation", 2025, sync=True)


def login(client, user):
    client.force_login(user)
    return client


def new_url(run):
    return reverse("admin:settlement_simulation_new", args=[run.pk])


def test_run_page_offers_simulate_and_the_form_is_prefilled_from_the_policy(client, make_user, settled):
    a, b, run = settled
    login(client, make_user("city"))
    page = client.get(reverse("admin:settlement_settlementrun_change", args=[run.pk])).content.decode()
    assert f'href="{new_url(run)}"' in page and ">模拟<" in page
    form = client.get(new_url(run)).content.decode()
    # Labels and bounds from the parameter schema, values from the run's policy.
    assert "结余留用比例（retention）" in form and "不小于0，不大于1" in form
    assert re.search(r'name="p_retention"[^>]*value="0.85"', form)
    assert "计入实际支出的门诊类型（visit_types）" in form and 'value="慢病门诊"' in form
    # A choice by its Chinese label (the same field builder as the policy form, settlement/engine/param_forms.py)
    assert '<option value="add_all" selected>各病种标准逐项叠加</option>' in form
    # Only the factors that apply to capitation (standards), labelled.
    assert "标准调整系数（standards_factor）" in form and "f_budget" not in form and "f_base_points" not in form


@pytest.fixture
def post_form(django_capture_on_commit_callbacks):
    """POST the 模拟 form with its prefilled values and `changes`; the job the page enqueues on
    commit runs in-process (CELERY task_always_eager in tests)."""

    def post(client, run, **changes):
        with django_capture_on_commit_callbacks(execute=True):
            return _post_form(client, run, **changes)

    return post


def _post_form(client, run, **changes):
    page = client.get(new_url(run))
    data = {}
    for name, field in page.context["form"].fields.items():
        initial = page.context["form"][name].value()
        if initial is None or initial is False:
            continue
        data[name] = initial
    data.update(changes)
    return client.post(new_url(run), data)


def test_simulating_from_the_form_shows_base_simulated_and_differences(client, make_user, settled, post_form):
    a, b, run = settled
    login(client, make_user("city"))
    response = post_form(client, run, p_retention="0.80", note="留用比例下调")
    simulation = Simulation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:settlement_simulation_change", args=[simulation.pk])
    # Only the changed parameter is recorded as a change, and it ran (in-process in tests).
    assert simulation.changes == {"retention": "0.80"} and simulation.factors == {}
    page = client.get(response["Location"]).content.decode()
    # A: unit part 850.00 → 800.00, E 1,650.00 → 1,600.00: −50.00 with U+2212
    assert "1,650.00" in page and "1,600.00" in page and f"{MINUS}50.00" in page
    assert "结余留用比例（retention）" in page and "0.85" in page and "0.80" in page
    # B refunds 425.00 either way: negative money with U+2212, not a hyphen.
    assert f"{MINUS}425.00" in page and "-425.00" not in page
    # Totals: fund outlay Σ E 4,125.00 → 4,075.00; one unit losing, none gaining.
    assert "基金支出（Σ应得金额E）" in page and "4,125.00" in page and "4,075.00" in page
    assert "增加 <strong>0</strong> 个，减少 <strong>1</strong> 个" in page
    # The chart: a container, ECharts from our static files (no CDN), data from json_script.
    assert 'id="simulation-chart"' in page and "vendor/echarts/echarts.min.js" in page and "//cdn" not in page
    data = json.loads(re.search(r'<script id="simulation-chart-data" type="application/json">(.*?)</script>',
                                page, re.S).group(1))
    assert data["values"] == ["-50.00", "0.00"]
    assert "差额 −50.00 元" in data["tooltips"][0]
    # …and a table with the same numbers under it, with Q, A, S, unit part, E and 年终清算金额.
    for header in ("预算额度（Q）", "实际支出（A）", "结余超支（S）", "单位分担留用", "应得金额（E）", "年终清算金额"):
        assert header in page


def test_bad_input_gets_a_chinese_message_and_lands_nothing(client, make_user, settled, post_form):
    a, b, run = settled
    login(client, make_user("city"))
    for changes, reason in [
        ({"p_retention": "1.5"}, "参数“结余留用比例”（retention）不能大于1"),
        ({"p_retention": "八五折"}, "应为数字"),
        ({"f_standards": "0"}, "标准调整系数"),
        ({"p_standard_valid_years": "0"}, "不能小于1"),
    ]:
        response = post_form(client, run, **changes)
        assert response.status_code == 200
        assert reason in response.content.decode()
    assert not Simulation.objects.exists()


def test_export_list_and_comparison(client, make_user, settled):
    a, b, run = settled
    login(client, make_user("city"))
    first = sim.start_simulation(run, {"retention": "0.80"}, sync=True)
    second = sim.start_simulation(run, {"retention": "0.90"}, sync=True)
    export = client.get(reverse("admin:settlement_simulation_export", args=[first.pk]))
    rows = list(load_workbook(io.BytesIO(export.content)).active.iter_rows(values_only=True))
    assert rows[0][:5] == ("单位编码", "单位名称", "Q基准", "Q模拟", "Q差额")
    assert rows[0][-6:] == ("S基准", "S模拟", "S差额", "单位分担留用基准", "单位分担留用模拟", "单位分担留用差额")
    assert rows[1][:2] == ("YGT-A", rows[1][1]) and rows[1][11:14] == (850, 800, -50)

    listed = client.get(reverse("admin:settlement_simulation_changelist") + f"?run={run.pk}").content.decode()
    assert str(first) in listed and str(second) in listed and "retention=0.80" in listed

    page = client.get(reverse("admin:settlement_simulation_compare") + f"?ids={first.pk},{second.pk}").content.decode()
    # A: base 850.00; 1,000.00 × 80% = 800.00 (−50.00) and × 90% = 900.00 (+50.00)
    row = re.search(r"<tr><td>YGT-A</td>.*?</tr>", page, re.S).group(0)
    assert [c for c in re.findall(r'<td class="num">([^<]*)</td>', row)] == ["850.00", "800.00", f"{MINUS}50.00", "900.00", "+50.00"]
    bad = client.get(reverse("admin:settlement_simulation_compare") + "?ids=abc")
    assert bad.status_code == 302


def test_a_hospital_sees_only_its_units_and_cannot_simulate(client, make_user, settled):
    a, b, run = settled
    simulation = sim.start_simulation(run, {"retention": "0.80"}, sync=True)
    login(client, make_user("hospital", a.lead_hospital.code))  # the lead hospital of YGT-A
    page = client.get(reverse("admin:settlement_simulation_change", args=[simulation.pk])).content.decode()
    assert "YGT-A" in page and "YGT-B" not in page and "2,475.00" not in page
    data = json.loads(re.search(r'<script id="simulation-chart-data" type="application/json">(.*?)</script>',
                                page, re.S).group(1))
    assert len(data["values"]) == 1
    export = client.get(reverse("admin:settlement_simulation_export", args=[simulation.pk]))
    rows = list(load_workbook(io.BytesIO(export.content)).active.iter_rows(values_only=True))
    assert [r[0] for r in rows[1:]] == ["YGT-A"]
    assert client.get(new_url(run)).status_code == 403
    run_page = client.get(reverse("admin:settlement_settlementrun_change", args=[run.pk])).content.decode()
    assert 'id="simulate-link"' not in run_page


def test_other_hospitals_and_counties_cannot_reach_it(client, make_user, settled, other_county):
    a, b, run = settled
    simulation = sim.start_simulation(run, {}, sync=True)
    stranger = factories.institution(county=other_county)
    login(client, make_user("hospital", stranger.code))
    assert client.get(reverse("admin:settlement_simulation_change", args=[simulation.pk])).status_code == 404
    assert client.get(reverse("admin:settlement_simulation_export", args=[simulation.pk])).status_code == 404
    assert client.get(reverse("admin:settlement_simulation_compare") + f"?ids={simulation.pk}").status_code == 404
    login(client, make_user("county", other_county.code))
    assert client.get(new_url(run)).status_code == 404  # the city-wide run of another county's units
    login(client, make_user("auditor"))
    assert client.get(reverse("admin:settlement_simulation_change", args=[simulation.pk])).status_code == 200
    assert client.get(new_url(run)).status_code == 403


def test_the_result_page_does_a_fixed_number_of_queries(client, make_user, settled):
    a, b, run = settled
    login(client, make_user("city"))

    def queries(simulation):
        url = reverse("admin:settlement_simulation_change", args=[simulation.pk])
        client.get(url)  # warm the session and the user's scope
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    small = queries(sim.start_simulation(run, {"retention": "0.80"}, sync=True))
    # Three more alliances, each with its own head: the same page over five units.
    for _ in range(3):
        lead = factories.institution(county=a.county)
        factories.alliance(lead=lead)
        person = factories.person(a.county)
        factories.contract(person, lead, d("2024-01-01"), verified_on=d("2024-01-02"))
    bigger = start_run("capitation", 2025, sync=True)
    simulation = sim.start_simulation(bigger, {"retention": "0.80"}, sync=True)
    assert simulation.units.count() == 5
    assert queries(simulation) == small
