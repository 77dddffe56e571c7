"""`policy load | set | show` and `approve` (SPEC §5), and the README's scripted year-end.

Every refusal is a CommandError with one Chinese line and leaves the database as it was. The year-end
test reads the README's block and runs each command through call_command, so the README cannot drift.
"""
import re
import shlex
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from openpyxl import load_workbook

from settlement.engine.models import PaymentPolicy, RunStatus, SettlementRun
from settlement.engine.policy_services import set_parameters
from settlement.models import ApprovalStatus, CapitationStandard, SpecialStandard
from tests import factories
from tests.settlement.test_end_to_end import FILES, HEADERS, figures, write_file

pytestmark = pytest.mark.django_db

D = Decimal
README = Path(__file__).resolve().parents[2] / "README.md"
CAPITATION_FIELDS = ["retention", "overspend_share", "max_bonus_up", "max_bonus_down", "bonus_from_score",
                     "bonus_pass_score", "disease_add_mode", "visit_types", "standard_valid_years"]


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue()


def refused(*args):
    with pytest.raises(CommandError) as info:
        run(*args)
    message = str(info.value)
    assert "\n" not in message  # one line
    return message


def show(scheme, year="2025", *extra):
    """(header lines, {name: (label, value, source)}) from `policy show`."""
    lines = run("policy", "show", scheme, "--year", year, *extra).splitlines()
    start = lines.index("参数\t名称\t取值\t来源")
    rows = {}
    for line in lines[start + 1:]:
        name, label, value, source = line.split("\t")
        rows[name] = (label, value, source)
    return lines[:start], rows


def capitation_policy():
    return PaymentPolicy.objects.get(scheme="capitation", year=2025, region=None)


# --- policy load / show ------------------------------------------------------------------------


def test_load_then_show_names_preset_and_default_values():
    out = run("policy", "load", "--preset", "huzhou", "--year", "2025")
    assert out.strip() == "2025 门诊按人头付费（全市）：湖州预设：已加载（待审批）"

    header, rows = show("capitation")
    assert header == ["2025 门诊按人头付费（全市）：湖州预设", "状态：草稿；审批人：—（待审批）"]
    assert list(rows) == CAPITATION_FIELDS
    # Named by the Huzhou preset [HZ §2]: 85% kept, 85% borne, the two visit types.
    assert rows["retention"] == ("结余留用比例", "0.85", "预设（湖州）")
    assert rows["visit_types"] == ("计入实际支出的门诊类型", "普通门诊,慢病门诊", "预设（湖州）")
    # Not named by the preset: the scheme's defaults.
    assert rows["bonus_from_score"] == ("按考核得分折算上浮/下调百分点", "false", "默认")
    assert rows["bonus_pass_score"] == ("折算起点得分（得分不高于此不上浮）", "60", "默认")


def test_defaults_preset_loads_every_scheme_and_keeps_an_approved_one(make_user):
    run("policy", "load", "--preset", "huzhou", "--year", "2025")  # loaded by the system: a city user approves
    run("policy", "load", "--preset", "huzhou", "--year", "2025", "--approve", "--user", make_user("city").username)
    out = run("policy", "load", "--preset", "defaults", "--year", "2025")
    assert "2025 门诊按人头付费（全市）：湖州预设已审批，未覆盖" in out.splitlines()
    schemes = dict(PaymentPolicy.objects.filter(year=2025).values_list("scheme", "name"))
    assert schemes == {
        "capitation": "湖州预设", "special_outpatient": "默认参数预设", "family_doctor": "默认参数预设",
        "alliance_budget": "默认参数预设", "drg": "默认参数预设", "bed_day": "默认参数预设", "disease": "默认参数预设",
        "benefits": "默认参数预设",  # the benefit engine's modifiers (SPEC §6.8): a policy that settles nothing
        "audit": "默认参数预设",  # the audit rules' thresholds (SPEC §9): neither does this one
    }
    _, rows = show("drg")
    assert rows["readmission_days"] == ("同病组再入院天数", "10", "默认")
    assert {source for _, _, source in rows.values()} == {"默认"}


def test_load_refusals():
    assert "--approve 需要用 --user" in refused("policy", "load", "--preset", "huzhou", "--year", "2025", "--approve")
    assert refused("policy", "load", "--preset", "huzhou", "--year", "2025", "--approve", "--user", "nobody") == \
        "用户“nobody”不存在，请先用 create_user 创建"
    assert "没有“beijing”的政策预设，可选：huzhou、panzhihua、kaifeng、defaults" in refused(
        "policy", "load", "--preset", "beijing", "--year", "2025")
    assert not PaymentPolicy.objects.exists()


def test_load_and_approve_records_the_approver(make_user):
    loader, city = make_user("city"), make_user("city")
    run("policy", "load", "--preset", "huzhou", "--year", "2025", "--user", loader.username)
    # Four eyes: the one who loaded the draft cannot approve it, and nothing is approved.
    message = refused("policy", "load", "--preset", "huzhou", "--year", "2025", "--approve", "--user", loader.username)
    assert message == ("不能审批支付政策：“2025 门诊按人头付费（全市）：湖州预设”由您本人加载或修改，"
                       "须由另一位有审批权限的用户审批（四眼原则）")
    assert capitation_policy().status == ApprovalStatus.DRAFT
    # A second user approves the same values; loading them again changes nothing, so nothing new to review.
    out = run("policy", "load", "--preset", "huzhou", "--year", "2025", "--approve", "--user", city.username)
    assert out.strip() == "2025 门诊按人头付费（全市）：湖州预设：已加载并审批"
    policy = capitation_policy()
    assert (policy.status, policy.approved_by) == (ApprovalStatus.APPROVED, city)
    assert policy.history.latest().history_user == city
    assert policy.history.earliest().history_user == loader  # who changed, who approved: both recorded
    header, _ = show("capitation")
    assert header[1].startswith(f"状态：已审批；审批人：{city.username}；审批时间：")


def test_show_without_a_policy_is_refused():
    factories.region()
    assert refused("policy", "show", "capitation", "--year", "2025") == \
        "未找到2025年度门诊按人头付费（全市）的支付政策，可用 policy load 或 policy set 创建"
    run("policy", "load", "--preset", "huzhou", "--year", "2025")
    assert refused("policy", "show", "capitation", "--year", "2025", "--region", "330502").endswith(
        "（吴兴区）的支付政策，可用 policy load 或 policy set 创建；结算时将使用全市政策")


# --- policy set --------------------------------------------------------------------------------


def test_set_a_valid_value_shows_as_set_with_the_history():
    run("policy", "load", "--preset", "huzhou", "--year", "2025")
    out = run("policy", "set", "capitation", "--year", "2025", "retention=0.8",
              "visit_types=普通门诊,慢病门诊,特病门诊")
    assert "已设置 retention=0.8，visit_types=普通门诊,慢病门诊,特病门诊（草稿，审批后生效）" in out
    policy = capitation_policy()
    assert policy.parameters["retention"] == "0.8"
    assert policy.parameters["visit_types"] == ["普通门诊", "慢病门诊", "特病门诊"]
    assert policy.parameters["overspend_share"] == "0.85"  # untouched
    assert policy.typed_parameters().retention == D("0.8")
    assert policy.history.latest().history_change_reason == \
        "命令行 policy set retention=0.8 visit_types=普通门诊,慢病门诊,特病门诊"

    _, rows = show("capitation")
    label, value, source = rows["retention"]
    assert (label, value) == ("结余留用比例", "0.8")
    assert re.fullmatch(r"设置（\d{4}-\d\d-\d\d \d\d:\d\d，命令行 policy set retention=0\.8 visit_types=.*）", source)
    assert rows["visit_types"][2].startswith("设置（")
    assert rows["overspend_share"] == ("超支分担比例", "0.85", "预设（湖州）")
    assert rows["bonus_from_score"][2] == "默认"


def test_set_back_to_the_preset_value_is_preset_again_and_the_user_is_named(make_user):
    run("policy", "load", "--preset", "huzhou", "--year", "2025")
    city = make_user("city")
    set_parameters("capitation", 2025, None, ["retention=0.9"], user=city, reason="管理后台修改")
    _, rows = show("capitation")
    assert re.fullmatch(rf"设置（{city.username}，\d{{4}}-\d\d-\d\d \d\d:\d\d，管理后台修改）", rows["retention"][2])
    run("policy", "set", "capitation", "--year", "2025", "retention=0.850")
    _, rows = show("capitation")
    assert rows["retention"] == ("结余留用比例", "0.850", "预设（湖州）")


def test_set_without_a_policy_creates_a_draft_from_the_defaults():
    run("policy", "set", "drg", "--year", "2025", "readmission_days=7", "iqr_factor=2")
    policy = PaymentPolicy.objects.get(scheme="drg", year=2025)
    assert policy.status == ApprovalStatus.DRAFT
    params = policy.typed_parameters()
    assert (params.readmission_days, params.iqr_factor) == (7, D("2"))
    assert (params.pool_mode, params.prepayment_ratio, params.readmission_factor) == ("county_band", D("0.90"), D("0.5"))
    _, rows = show("drg")
    assert rows["readmission_days"][:2] == ("同病组再入院天数", "7")
    assert rows["readmission_days"][2].startswith("设置（")
    assert rows["pool_mode"] == ("统筹池方式", "county_band", "默认")


@pytest.mark.parametrize("assignment, expected", [
    ("retention=1.5", "参数“结余留用比例”（retention）不能大于1，当前为1.5"),
    ("retention=-0.1", "参数“结余留用比例”（retention）不能小于0，当前为-0.1"),
    ("retention=八成", "参数“结余留用比例”（retention）应为数字，当前为“八成”"),
    ("standard_valid_years=11", "参数“测算标准有效年数”（standard_valid_years）不能大于10，当前为11"),
    ("disease_add_mode=max", "参数“慢特病标准叠加方式”（disease_add_mode）取值“max”无效，可选：add_all、highest_only"),
    ("visit_types=普通门诊,急诊", "参数“计入实际支出的门诊类型”（visit_types）取值“急诊”无效"),
    ("bonus_from_score=maybe", "参数“按考核得分折算上浮/下调百分点”（bonus_from_score）应为 true 或 false"),
    ("visit_types=", "至少选择一种计入实际支出的门诊类型"),
])
def test_set_refuses_a_bad_value_by_its_chinese_label_and_changes_nothing(assignment, expected):
    run("policy", "load", "--preset", "huzhou", "--year", "2025")
    before = (dict(capitation_policy().parameters), capitation_policy().history.count())
    message = refused("policy", "set", "capitation", "--year", "2025", "overspend_share=0.7", assignment)
    assert expected in message
    policy = capitation_policy()
    assert (policy.parameters, policy.history.count()) == before
    assert policy.parameters["overspend_share"] == "0.85"  # the valid half of the command did not land either


def test_set_refuses_an_unknown_name_listing_the_valid_ones():
    message = refused("policy", "set", "capitation", "--year", "2025", "retension=0.8")
    assert message.startswith("未知参数“retension”，可用参数：retention（结余留用比例）、overspend_share（超支分担比例）、")
    assert message.endswith("standard_valid_years（测算标准有效年数）")
    assert refused("policy", "set", "capitation", "--year", "2025", "retention") == "参数应写成 NAME=VALUE，收到“retention”"
    assert refused("policy", "set", "capitation", "--year", "2025").startswith("请至少给出一个参数")
    assert refused("policy", "set", "capitaton", "--year", "2025", "retention=0.8").startswith("未知的支付方案“capitaton”")
    assert not PaymentPolicy.objects.exists()


def test_set_on_an_approved_policy_is_refused(make_user):
    run("policy", "load", "--preset", "huzhou", "--year", "2025")
    run("policy", "load", "--preset", "huzhou", "--year", "2025", "--approve", "--user", make_user("city").username)
    before = capitation_policy().history.count()
    message = refused("policy", "set", "capitation", "--year", "2025", "retention=0.8")
    assert message == "支付政策“2025 门诊按人头付费（全市）：湖州预设”已审批，不能再修改或删除"
    policy = capitation_policy()
    assert (policy.parameters["retention"], policy.history.count()) == ("0.85", before)


# --- approve -----------------------------------------------------------------------------------


def draft_standards():
    disease = factories.disease("I10", name="高血压")
    special = factories.disease("N18", name="慢性肾衰竭")
    for insurance_type, amount in (("居民", "1200.00"), ("职工", "1800.00")):
        CapitationStandard.objects.create(year=2025, insurance_type=insurance_type, age_band="60周岁及以下",
                                          amount=D(amount))
    CapitationStandard.objects.create(year=2025, insurance_type="居民", age_band="60周岁及以下", disease=disease,
                                      amount=D("600.00"))
    CapitationStandard.objects.create(year=2024, insurance_type="居民", age_band="60周岁及以下", amount=D("1100.00"))
    SpecialStandard.objects.create(year=2025, disease=special, amount=D("30000.00"))


def test_approve_refuses_a_user_without_the_city_role(make_user):
    county = factories.region()
    run("policy", "load", "--preset", "huzhou", "--year", "2025")
    draft_standards()
    county_user = make_user("county", county.code)
    hospital_user = make_user("hospital", factories.institution(county=county).code)
    for user in (county_user, hospital_user):
        assert refused("approve", "policies", "--year", "2025", "--user", user.username) == \
            "您没有权限审批支付政策：只有市医保局可以审批"
        assert refused("approve", "capitation_standards", "--year", "2025", "--user", user.username) == \
            "您没有权限审批门诊人头标准：只有市医保局可以审批"
    assert refused("approve", "policies", "--year", "2025", "--user", "ghost") == "用户“ghost”不存在，请先用 create_user 创建"
    assert set(PaymentPolicy.objects.values_list("status", flat=True)) == {ApprovalStatus.DRAFT}
    assert set(CapitationStandard.objects.values_list("status", flat=True)) == {ApprovalStatus.DRAFT}


def test_approve_policies_and_standards_as_the_named_city_user(make_user):
    city = make_user("city")
    run("policy", "load", "--preset", "huzhou", "--year", "2025")
    run("policy", "load", "--preset", "panzhihua", "--year", "2025")
    run("policy", "load", "--preset", "huzhou", "--year", "2024")  # another year: not approved
    draft_standards()

    # capitation + special_outpatient + family_doctor of 2025
    assert run("approve", "policies", "--year", "2025", "--user", city.username).strip() == \
        f"已审批2025年度（全市）支付政策3项，审批人：{city.username}"
    for policy in PaymentPolicy.objects.filter(year=2025):
        assert (policy.status, policy.approved_by) == (ApprovalStatus.APPROVED, city)
        latest = policy.history.latest()
        assert (latest.status, latest.history_user) == (ApprovalStatus.APPROVED, city)
    assert PaymentPolicy.objects.get(year=2024).status == ApprovalStatus.DRAFT

    # three 2025 capitation standards; the 2024 one stays a draft
    assert "门诊人头标准3项" in run("approve", "capitation_standards", "--year", "2025", "--user", city.username)
    approved = CapitationStandard.objects.filter(status=ApprovalStatus.APPROVED)
    assert sorted(approved.values_list("amount", flat=True)) == [D("600.00"), D("1200.00"), D("1800.00")]
    assert set(approved.values_list("approved_by", flat=True)) == {city.pk}
    assert all(row.history.latest().history_user == city for row in approved)
    assert CapitationStandard.objects.get(year=2024).status == ApprovalStatus.DRAFT

    assert "二类门特人头标准1项" in run("approve", "special_standards", "--year", "2025", "--user", city.username)
    assert SpecialStandard.objects.get().approved_by == city

    # nothing left: said so, exit 0
    assert run("approve", "policies", "--year", "2025", "--user", city.username).strip() == \
        "2025年度（全市）没有待审批的支付政策"
    assert run("approve", "special_standards", "--year", "2025", "--user", city.username).strip() == \
        "2025年度（全市）没有待审批的二类门特人头标准"


def test_approve_refuses_what_the_approver_changed_all_or_none(make_user):
    """Four eyes through the command line: the one who last changed a draft cannot approve it."""
    editor, other = make_user("city"), make_user("city")
    draft_standards()
    changed = CapitationStandard.objects.filter(year=2025).order_by("pk").first()
    changed.amount = D("1250.00")
    changed._history_user = editor  # as the admin's history middleware records a form's save
    changed.save()
    message = refused("approve", "capitation_standards", "--year", "2025", "--user", editor.username)
    assert message == (f"不能审批人头标准：“{changed}”由您本人最后修改，须由另一位有审批权限的用户审批（四眼原则）")
    # All or none: the other two drafts of the year were not approved either.
    assert not CapitationStandard.objects.filter(status=ApprovalStatus.APPROVED).exists()
    assert "门诊人头标准3项" in run("approve", "capitation_standards", "--year", "2025", "--user", other.username)
    changed.refresh_from_db()
    assert (changed.status, changed.approved_by, changed.amount) == (ApprovalStatus.APPROVED, other, D("1250.00"))

    run("policy", "load", "--preset", "huzhou", "--year", "2025", "--user", editor.username)
    assert "由您本人最后修改" in refused("approve", "policies", "--year", "2025", "--user", editor.username)
    assert PaymentPolicy.objects.get().status == ApprovalStatus.DRAFT


def test_approve_policies_of_one_county_only(make_user):
    county = factories.region()
    city = make_user("city")
    run("policy", "load", "--preset", "huzhou", "--year", "2025")
    run("policy", "load", "--preset", "huzhou", "--year", "2025", "--region", county.code)
    assert "支付政策1项" in run("approve", "policies", "--year", "2025", "--region", county.code, "--user", city.username)
    statuses = dict(PaymentPolicy.objects.values_list("region__code", "status"))
    assert statuses == {county.code: ApprovalStatus.APPROVED, None: ApprovalStatus.DRAFT}
    assert refused("approve", "capitation_standards", "--year", "2025", "--region", county.code,
                   "--user", city.username) == "门诊人头标准为全市统一标准，不按县区审批，请去掉 --region"


def test_approve_policies_is_all_or_nothing(make_user):
    city = make_user("city")
    run("policy", "load", "--preset", "panzhihua", "--year", "2025")
    # A parameter set that no longer validates (written past the service, as an old row might be).
    PaymentPolicy.objects.filter(scheme="special_outpatient").update(parameters={"surplus_retention": "2"})
    message = refused("approve", "policies", "--year", "2025", "--user", city.username)
    assert "的参数有误，不能审批：参数“结余留用比例”（surplus_retention）不能大于1" in message
    assert set(PaymentPolicy.objects.values_list("status", flat=True)) == {ApprovalStatus.DRAFT}


def test_approve_empty_benefit_rules_and_unknown_kinds_are_refused(make_user):
    city = make_user("city")
    assert refused("approve", "benefit_rules", "--year", "2025", "--user", city.username) == \
        "2025年度待遇政策表没有任何规则，请先导入 benefit_rules"
    assert refused("approve", "budgets", "--year", "2025", "--user", city.username).startswith("未知的审批对象“budgets”")


# --- the README's scripted year-end ---------------------------------------------------------------


def readme_year_end():
    """The manage.py commands of the README's "Scripted year-end" block, as argument lists."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Scripted year-end from a fresh database", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        assert words[:2] in (["python", "manage.py"], [".venv/bin/python", "manage.py"]), line
        commands.append(words[2:])
    return commands


def test_readme_year_end_runs_from_an_empty_database(tmp_path, monkeypatch):
    """The city of test_end_to_end (figures worked out by hand in its docstring), through the README only."""
    assert not PaymentPolicy.objects.exists() and not CapitationStandard.objects.exists()
    monkeypatch.chdir(tmp_path)
    data = {resource: (headers, rows) for resource, _fmt, headers, rows in FILES}
    commands = readme_year_end()
    names = [words[0] for words in commands]
    assert names[:2] == ["migrate", "create_user"]
    settled = set()
    outputs = {}
    for words in commands:
        if words[0] == "import_data":
            resource, path = words[1], Path(words[2])
            assert resource in data, f"README imports {resource}, which the test city does not have"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_file(path, path.suffix.lstrip("."), *data[resource])
        if words[0] == "settle":
            settled.add(words[1])
        outputs[" ".join(words)] = run(*words)

    assert {words[1] for words in commands if words[0] == "import_data"} == set(data)
    assert settled == {"capitation", "special_outpatient", "family_doctor", "alliance_budget", "drg", "bed_day",
                       "disease"}
    # Every scheme's policy of the year (and the benefit engine's and the audit rules') is approved, by the
    # README's city user.
    user = commands[names.index("create_user")][1]
    policies = PaymentPolicy.objects.filter(year=2025)
    assert policies.count() == 9
    assert set(policies.values_list("status", "approved_by__username")) == {(ApprovalStatus.APPROVED, user)}
    assert capitation_policy().name == "湖州预设"
    assert set(CapitationStandard.objects.values_list("status", "approved_by__username")) == \
        {(ApprovalStatus.APPROVED, user)}
    assert "retention\t结余留用比例\t0.85\t预设（湖州）" in outputs["policy show capitation --year 2025"]

    run_row = SettlementRun.objects.get(scheme="capitation", year=2025)
    assert (run_row.status, run_row.units_total) == (RunStatus.COMPUTED, 2)
    export = commands[names.index("export_settlement")]
    output = Path(export[export.index("--output") + 1])
    rows = [[cell.value for cell in row] for row in load_workbook(output).active.iter_rows()]
    assert rows[0][:11] == HEADERS
    by_code = {row[0]: row for row in rows[1:]}
    #                                  Q          A         S          unit       fund      E          paid  违规扣款 year-end
    assert figures(by_code["YGT-A"]) == [D("1650.00"), D("500.00"), D("1150.00"), D("1035.00"), D("115.00"),
                                         D("1535.00"), D("600.00"), D("0.00"), D("935.00")]
    assert figures(by_code["YGT-B"]) == [D("1800.00"), D("2300.00"), D("-500.00"), D("-425.00"), D("-75.00"),
                                         D("1875.00"), D("2300.00"), D("0.00"), D("-425.00")]
