"""Findings across re-runs (idempotent, SPEC §9), the review workflow and its scope for every role."""
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from alliances.models import InstitutionLevel
from alliances.scope import restrict
from settlement.approval import Refused
from settlement.audit.models import Finding, FindingStatus, FindingStep
from settlement.audit.services import appeal, decide, run_audit, start_audit
from settlement.engine.models import PaymentPolicy
from settlement.engine.presets import approve_policy
from settlement.models import JobStatus
from tests import factories
from tests.settlement.audit_builders import claim

pytestmark = pytest.mark.django_db


def _duplicate(inst, person, day="2025-03-01"):
    claim(inst, person, day, total="120.00", personal="20.00")
    return claim(inst, person, day, total="120.00", personal="20.00")


@pytest.fixture
def world(county, other_county, make_user):
    lead = factories.institution(county=county, level=InstitutionLevel.TERTIARY)
    member = factories.institution(county=county)
    outsider = factories.institution(county=county)
    far = factories.institution(county=other_county)
    factories.alliance(lead=lead, members=[member])
    patient = factories.person(county=county)
    for inst in (lead, member, outsider, far):
        _duplicate(inst, patient)
    run_audit(2025, ["DUP01"])
    by_inst = {f.institution_id: f for f in Finding.objects.all()}
    return {
        "lead": lead, "member": member, "outsider": outsider, "far": far, "findings": by_inst,
        "city": make_user("city"), "county": make_user("county", county.code),
        "other_county": make_user("county", other_county.code), "health": make_user("health", county.code),
        "auditor": make_user("auditor"), "lead_staff": make_user("hospital", lead.code),
        "member_staff": make_user("hospital", member.code),
    }


def test_rerun_never_duplicates_and_keeps_review_state(county, make_user):
    inst = factories.institution(county=county)
    patient = factories.person(county=county)
    kept = _duplicate(inst, patient, "2025-03-01")
    gone = _duplicate(inst, patient, "2025-04-01")
    decided = _duplicate(inst, patient, "2025-05-01")
    run_audit(2025, ["DUP01"])
    assert Finding.objects.count() == 3
    staff = make_user("hospital", inst.code)
    bureau = make_user("county", county.code)
    appeal(Finding.objects.get(claim=kept).pk, staff, "系同一次就诊的补录")
    decide([Finding.objects.get(claim=decided).pk], bureau, True, "核实为重复结算")

    # The April and the confirmed May duplicates are corrected at source (their 总费用 no longer equal).
    for row in (gone, decided):
        row.total_cost, row.fund_paid = Decimal("121.00"), Decimal("101.00")
        row.save()
    run_audit(2025, ["DUP01"])
    assert Finding.objects.count() == 3  # the re-run adds no row
    assert Finding.objects.get(claim=kept).status == FindingStatus.APPEALED  # found again: state kept
    assert Finding.objects.get(claim=gone).status == FindingStatus.EXPIRED  # undecided, no longer produced
    assert Finding.objects.get(claim=decided).status == FindingStatus.CONFIRMED  # decided: kept
    run_audit(2025, ["DUP01"])
    assert Finding.objects.get(claim=gone).steps.count() == 1  # expired once, not again


def test_expired_reopens_and_decided_stays_decided(county, make_user):
    inst = factories.institution(county=county)
    patient = factories.person(county=county)
    dup = _duplicate(inst, patient)
    run_audit(2025, ["DUP01"])
    finding = Finding.objects.get()
    dup.total_cost = Decimal("121.00")
    dup.fund_paid = Decimal("101.00")
    dup.save()
    run_audit(2025, ["DUP01"])
    finding.refresh_from_db()
    assert finding.status == FindingStatus.EXPIRED
    assert list(finding.steps.values_list("from_status", "to_status")) == [("待核查", "已失效")]
    dup.total_cost, dup.fund_paid = Decimal("120.00"), Decimal("100.00")
    dup.save()
    run_audit(2025, ["DUP01"])
    finding.refresh_from_db()
    assert finding.status == FindingStatus.OPEN and Finding.objects.count() == 1
    # the reopening is a step of its own, like the expiry
    assert list(finding.steps.values_list("from_status", "to_status", "user")) == [
        ("待核查", "已失效", None), ("已失效", "待核查", None)]
    assert finding.steps.last().reason == "重新审核时规则再次产生该疑点"

    decide([finding.pk], make_user("city"), False, "经核查为两次独立就诊")
    dup.total_cost, dup.fund_paid = Decimal("121.00"), Decimal("101.00")
    dup.save()
    run_audit(2025, ["DUP01"])
    finding.refresh_from_db()
    assert finding.status == FindingStatus.DISMISSED  # decided: never 已失效


def test_region_run_touches_only_its_county(county, other_county):
    here = factories.institution(county=county)
    there = factories.institution(county=other_county)
    patient = factories.person(county=county)
    _duplicate(here, patient)
    far = _duplicate(there, patient)
    run_audit(2025, ["DUP01"])
    far.total_cost, far.fund_paid = Decimal("121.00"), Decimal("101.00")
    far.save()
    run_audit(2025, ["DUP01"], county.code)  # the other county's finding is not re-evaluated
    assert set(Finding.objects.values_list("status", flat=True)) == {FindingStatus.OPEN}
    run_audit(2025, ["DUP01"], other_county.code)
    assert Finding.objects.get(institution=there).status == FindingStatus.EXPIRED


def test_findings_seen_by_each_role(world):
    f = world["findings"]
    def seen(user):
        return set(restrict(Finding.objects.all(), user).values_list("institution_id", flat=True))
    everything = {world[k].pk for k in ("lead", "member", "outsider", "far")}
    assert seen(world["city"]) == everything
    assert seen(world["auditor"]) == everything
    assert seen(world["county"]) == {world[k].pk for k in ("lead", "member", "outsider")}
    assert seen(world["other_county"]) == {world["far"].pk}
    assert seen(world["lead_staff"]) == {world["lead"].pk, world["member"].pk}  # the alliance's
    assert seen(world["member_staff"]) == {world["member"].pk}
    # The health commission does not review findings: no permission on the model at all.
    assert not world["health"].has_perm("settlement.view_finding")
    assert world["member_staff"].has_perm("settlement.view_finding")
    assert len(f) == 4


def test_appeal_scope_and_steps(world):
    f = world["findings"]
    attachment = SimpleUploadedFile("说明.pdf", b"%PDF-1.4 test")
    appeal(f[world["member"].pk].pk, world["lead_staff"], "牵头医院代成员单位申诉", attachment)
    step = FindingStep.objects.get(finding=f[world["member"].pk])
    assert (step.from_status, step.to_status, step.user) == ("待核查", "申诉", world["lead_staff"])
    assert step.attachment.name.endswith(".pdf") and step.at is not None
    with pytest.raises(Refused, match="不在您的数据范围内"):
        appeal(f[world["lead"].pk].pk, world["member_staff"], "越权申诉")
    with pytest.raises(Refused, match="不在您的数据范围内"):
        appeal(f[world["outsider"].pk].pk, world["lead_staff"], "越权申诉")
    with pytest.raises(Refused, match="只有医疗机构"):
        appeal(f[world["lead"].pk].pk, world["county"], "局方不能申诉")
    with pytest.raises(Refused, match="请填写申诉理由"):
        appeal(f[world["lead"].pk].pk, world["lead_staff"], "  ")
    with pytest.raises(Refused, match="只有待核查"):
        appeal(f[world["member"].pk].pk, world["member_staff"], "再次申诉")
    assert Finding.objects.get(pk=f[world["lead"].pk].pk).status == FindingStatus.OPEN


def test_decisions_by_bureau_only_and_in_scope(world):
    f = world["findings"]
    ours = [f[world[k].pk].pk for k in ("lead", "member", "outsider")]
    with pytest.raises(Refused, match="只有市、县区医保局"):
        decide(ours, world["lead_staff"], True, "医院不能认定")
    with pytest.raises(Refused, match="审计用户只能查看|只有市、县区医保局"):
        decide(ours, world["auditor"], True, "审计不能认定")
    with pytest.raises(Refused, match="不在您的数据范围内"):
        decide([*ours, f[world["far"].pk].pk], world["county"], True, "批量越权")
    assert not FindingStep.objects.exists()  # nothing lands half-way
    with pytest.raises(Refused, match="请填写认定理由"):
        decide(ours, world["county"], True, "")
    done = decide(ours, world["county"], True, "批量核实为重复结算")
    assert len(done) == 3
    assert set(Finding.objects.filter(pk__in=ours).values_list("status", flat=True)) == {FindingStatus.CONFIRMED}
    with pytest.raises(Refused, match="只有待核查或申诉中"):
        decide(ours[:1], world["city"], False, "改判")
    decide([f[world["far"].pk].pk], world["city"], False, "市局排除")
    step = FindingStep.objects.get(finding=f[world["far"].pk])
    assert (step.to_status, step.user, step.reason) == ("已排除", world["city"], "市局排除")


def test_start_audit_is_a_job_with_progress_and_refuses_bad_input(county, make_user):
    inst = factories.institution(county=county)
    _duplicate(inst, factories.person(county=county))
    job = start_audit(2025, ["dup01", "SPL01"], county.code, user=make_user("county", county.code), sync=True)
    assert job.status == JobStatus.SUCCEEDED and job.progress_done == job.progress_total == 2
    assert job.counts == {"DUP01": 1, "SPL01": 0}
    with pytest.raises(Refused, match="未知的审核规则“XXX01”"):
        start_audit(2025, ["XXX01"])
    with pytest.raises(Refused, match="年度"):
        start_audit("20x5")
    with pytest.raises(Refused, match="区划代码“999999”不存在"):
        start_audit(2025, region_code="999999")
    with pytest.raises(Refused, match="县区医保局只能"):
        start_audit(2025, user=make_user("county", county.code))
    with pytest.raises(Refused, match="没有权限"):
        start_audit(2025, user=make_user("hospital", inst.code))


def test_thresholds_come_from_the_approved_audit_policy(county, make_user):

    inst = factories.institution(county=county)
    patient = factories.person(county=county)
    for k in range(1, 10):  # 9 visits: under the default 10
        claim(inst, patient, f"2025-04-{k:02d}")
    policy = PaymentPolicy.objects.create(scheme="audit", year=2025, name="收紧", parameters={"monthly_visit_limit": 8})
    with pytest.raises(Refused, match="尚未审批"):
        run_audit(2025, ["FRQ01"])
    approve_policy(policy, make_user("city"))
    run_audit(2025, ["FRQ01"])
    assert Finding.objects.get().amount == Decimal("70.00")  # the 9th visit: 100.00 − 30.00


def test_policy_parameters_are_bounded_in_chinese():
    policy = PaymentPolicy(scheme="audit", year=2025, name="错", parameters={"split_days": -1})
    with pytest.raises(ValidationError, match="不能小于0"):
        policy.clean()


def test_audit_policy_through_policy_set_and_show(db, capsys):
    call_command("policy", "set", "audit", "--year", "2025", "monthly_visit_limit=8")
    policy = PaymentPolicy.objects.get(scheme="audit", year=2025)
    assert policy.parameters["monthly_visit_limit"] == 8 and policy.parameters["split_days"] == 15
    call_command("policy", "show", "audit", "--year", "2025")
    assert "超频就诊：每月同一机构就诊次数上限（FRQ01）" in capsys.readouterr().out
    with pytest.raises(CommandError, match="不能大于90"):
        call_command("policy", "set", "audit", "--year", "2025", "split_days=91")
