"""Issue 12: a draft payment policy is edited through a form generated from its scheme's parameter schema
(one field per parameter, by its Chinese label, with bounds and Chinese choice labels), never as JSON;
saving writes what `policy set` writes; approved policies stay read-only; scope and four eyes unchanged."""
import dataclasses
import re

import pytest
from django.urls import reverse

from settlement.approval import Refused
from settlement.engine.models import PaymentPolicy
from settlement.engine.params import defaults_of, field_label
from settlement.engine.policy_services import set_parameters
from settlement.engine.presets import approve_policy
from settlement.engine.schemes.capitation import CapitationParams
from settlement.models import ApprovalStatus
from tests import factories

pytestmark = pytest.mark.django_db


def draft(year=2025, **parameters):
    return PaymentPolicy.objects.create(scheme="capitation", year=year, name="草稿",
                                        parameters={**defaults_of(CapitationParams), **parameters})


def change_url(policy):
    return reverse("admin:settlement_paymentpolicy_change", args=[policy.pk])


def form_data(policy, **changes):
    """What the change page posts when the user alters `changes` (p_<name> → value) and nothing else."""
    data = {"year": policy.year, "name": policy.name, "region": "", "p__shown": "1", "_save": "保存",
            "p_retention": "0.85", "p_overspend_share": "0.85", "p_max_bonus_up": "5", "p_max_bonus_down": "5",
            "p_bonus_pass_score": "60", "p_disease_add_mode": "add_all", "p_visit_types": ["普通门诊", "慢病门诊"],
            "p_standard_valid_years": "2"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_one_field_per_parameter_by_its_chinese_label_with_bounds_and_choices(client, make_user):
    policy = draft()
    client.force_login(make_user("city"))
    page = client.get(change_url(policy)).content.decode()
    assert 'name="parameters"' not in page and "JSON" not in page
    for field in dataclasses.fields(CapitationParams):
        assert f'name="p_{field.name}"' in page, field.name
        assert field_label(field) in page, field.name
        assert f"（{field.name}）" not in page  # the key is never shown
    # a number: a text box with its stored value and its bounds as help
    assert re.search(r'<input type="text" name="p_retention" value="0.85"[^>]*data-min="0" data-max="1"', page)
    assert "数字，不小于0，不大于1" in page
    assert re.search(r'<input type="text" name="p_standard_valid_years" value="2"', page)
    assert "整数，不小于1，不大于10" in page
    # a yes/no: a check box; a choice: a select with the schema's Chinese labels; a list of choices: boxes
    assert re.search(r'<input type="checkbox" name="p_bonus_from_score"', page)
    assert re.search(r'<option value="add_all" selected>各病种标准逐项叠加</option>', page)
    assert '<option value="highest_only">只计最高的一项标准</option>' in page
    boxes = re.findall(r'<input type="checkbox" name="p_visit_types" value="([^"]+)"[^>]*?( checked)?>', page)
    assert boxes == [("普通门诊", " checked"), ("慢病门诊", " checked"), ("特病门诊", ""), ("二类门特", "")]


@pytest.mark.parametrize("changes, message", [
    ({"p_retention": "1.5"}, "结余留用比例不能大于1，当前为1.5"),
    ({"p_overspend_share": "-0.1"}, "超支分担比例不能小于0，当前为-0.1"),
    ({"p_retention": "八五折"}, "结余留用比例应为数字，当前为“八五折”"),
    ({"p_retention": ""}, "结余留用比例应为数字，当前为“”"),
    ({"p_standard_valid_years": "2.5"}, "测算标准有效年数应为整数，当前为“2.5”"),
    ({"p_standard_valid_years": "11"}, "测算标准有效年数不能大于10，当前为11"),
    ({"p_disease_add_mode": "sum"}, "选择一个有效的选项"),
])
def test_bad_values_are_refused_in_chinese_under_their_field_and_nothing_is_saved(client, make_user, changes,
                                                                                  message):
    policy = draft()
    before = dict(policy.parameters)
    client.force_login(make_user("city"))
    response = client.post(change_url(policy), form_data(policy, **changes))
    assert response.status_code == 200  # the form again, with the message
    assert message in response.content.decode()
    policy.refresh_from_db()
    assert policy.parameters == before


def test_a_combination_the_scheme_refuses_is_refused_whole(client, make_user):
    # DRG checks its prepayment ratio against 85%–95% itself (DrgParams.__post_init__) as well as by bounds.
    policy = PaymentPolicy.objects.create(scheme="drg", year=2025, name="草稿", parameters={})
    client.force_login(make_user("city"))
    page = client.get(change_url(policy)).content.decode()
    assert '<option value="county_band" selected>按县区×机构等级段分池</option>' in page
    response = client.post(change_url(policy), {
        "year": 2025, "name": "草稿", "p__shown": "1", "p_pool_mode": "city", "p_tcm_uplift": "1.08",
        "p_readmission_days": "10", "p_readmission_factor": "0.5", "p_prepayment_ratio": "0.80",
        "p_trimming": "iqr", "p_iqr_factor": "1.5", "p_cv_threshold": "1",
    })
    assert "月度预拨比例不能小于0.85，当前为0.80" in response.content.decode()
    policy.refresh_from_db()
    assert policy.parameters == {}


def test_saving_writes_the_parameters_policy_set_writes(client, make_user):
    # Both start from the same stored JSON, one key in a non-normal form ("5.0") that neither door touches.
    by_form = draft(2025, max_bonus_up="5.0")
    by_cli = draft(2026, max_bonus_up="5.0")
    user = make_user("city")
    client.force_login(user)
    response = client.post(change_url(by_form), form_data(
        by_form, p_retention="0.80", p_max_bonus_up="5.0", p_disease_add_mode="highest_only",
        p_visit_types=["普通门诊", "慢病门诊", "特病门诊"], p_bonus_from_score="on", p_standard_valid_years="3"))
    assert response.status_code == 302, response.content.decode()[:3000]
    set_parameters("capitation", 2026, None, [
        "retention=0.80", "disease_add_mode=highest_only", "visit_types=普通门诊,慢病门诊,特病门诊",
        "bonus_from_score=是", "standard_valid_years=3"])
    by_form.refresh_from_db()
    by_cli.refresh_from_db()
    assert by_form.parameters == by_cli.parameters
    assert by_form.parameters["retention"] == "0.80" and by_form.parameters["bonus_from_score"] is True
    assert by_form.parameters["visit_types"] == ["普通门诊", "慢病门诊", "特病门诊"]
    assert by_form.parameters["standard_valid_years"] == 3 and by_form.parameters["max_bonus_up"] == "5.0"
    assert by_form.status == ApprovalStatus.DRAFT
    assert by_form.history.first().history_user == user  # who changed it, for the four-eyes check


def test_a_policy_stored_with_keys_left_out_gets_only_the_changed_keys_as_policy_set_does(client, make_user):
    by_form = PaymentPolicy.objects.create(scheme="capitation", year=2025, name="草稿", parameters={"retention": "0.85"})
    by_cli = PaymentPolicy.objects.create(scheme="capitation", year=2026, name="草稿", parameters={"retention": "0.85"})
    client.force_login(make_user("city"))
    page = client.get(change_url(by_form)).content.decode()
    assert re.search(r'name="p_overspend_share" value="0.85"', page)  # a missing key shows its default
    assert client.post(change_url(by_form), form_data(by_form, p_overspend_share="0.90")).status_code == 302
    set_parameters("capitation", 2026, None, ["overspend_share=0.90"])
    by_form.refresh_from_db()
    by_cli.refresh_from_db()
    assert by_form.parameters == by_cli.parameters == {"retention": "0.85", "overspend_share": "0.90"}


def test_added_policy_takes_the_scheme_defaults_or_the_posted_fields(client, make_user):
    client.force_login(make_user("city"))
    add = reverse("admin:settlement_paymentpolicy_add")
    page = client.get(add).content.decode()
    assert 'name="parameters"' not in page and 'name="p_' not in page
    assert 'name="p_retention"' in client.get(add + "?scheme=capitation").content.decode()
    # Posted without the parameter fields and without a name: the page again, the parameters at their defaults.
    again = client.post(add, {"scheme": "capitation", "year": 2025, "_save": "保存"})
    assert again.status_code == 200 and "这个字段是必填项" in again.content.decode()
    assert re.search(r'name="p_retention" value="0.85"[^>]*disabled', again.content.decode())
    client.post(add, {"scheme": "capitation", "year": 2025, "name": "新建", "_save": "保存"})
    assert PaymentPolicy.objects.get(year=2025).parameters == defaults_of(CapitationParams)
    response = client.post(add, {"scheme": "capitation", "year": 2026, "name": "错误", "p__shown": "1",
                                 **{k: v for k, v in form_data(draft(2099), p_retention="1.5").items()
                                    if k.startswith("p_")}})
    assert "结余留用比例不能大于1" in response.content.decode()
    assert not PaymentPolicy.objects.filter(year=2026).exists()


def test_approved_policy_is_shown_read_only_by_its_labels(client, make_user):
    policy = draft(disease_add_mode="highest_only")
    approve_policy(policy, make_user("city"))
    client.force_login(make_user("city"))
    page = client.get(change_url(policy)).content.decode()
    assert 'name="p_' not in page and "JSON" not in page
    assert "结余留用比例" in page and "只计最高的一项标准" in page and "highest_only" not in page
    response = client.post(change_url(policy), form_data(policy, p_retention="0.50"))
    assert response.status_code == 403
    policy.refresh_from_db()
    assert policy.parameters["retention"] == "0.85" and policy.status == ApprovalStatus.APPROVED


def test_scope_and_four_eyes_are_unchanged(client, make_user):
    factories.region()
    city_wide = draft()
    client.force_login(make_user("county", "330502"))
    # A county bureau reads the city-wide draft but may not change it.
    page = client.get(change_url(city_wide)).content.decode()
    assert 'name="p_' not in page
    assert client.post(change_url(city_wide), form_data(city_wide, p_retention="0.50")).status_code == 403
    city_wide.refresh_from_db()
    assert city_wide.parameters["retention"] == "0.85"
    # Whoever changed the draft in the form cannot approve it; another city user can.
    editor = make_user("city")
    client.force_login(editor)
    assert client.post(change_url(city_wide), form_data(city_wide, p_retention="0.80")).status_code == 302
    with pytest.raises(Refused):
        approve_policy(PaymentPolicy.objects.get(pk=city_wide.pk), editor)
    approve_policy(PaymentPolicy.objects.get(pk=city_wide.pk), make_user("city"))
    assert PaymentPolicy.objects.get(pk=city_wide.pk).status == ApprovalStatus.APPROVED
