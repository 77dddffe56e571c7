"""Regions, institutions, alliances and memberships: codes, dates and one alliance at a time."""
import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from alliances.models import Alliance, Institution, InstitutionLevel, Membership, Region
from alliances.validators import validate_division_code, validate_institution_code
from tests import factories

D = datetime.date


def _messages(exc_info):
    return exc_info.value.message_dict


# --- codes --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["H33050200001", "H11010599999", "H00000000000"])
def test_institution_code_format_accepted(code):
    validate_institution_code(code)


@pytest.mark.parametrize(
    "code",
    [
        "33050200001",  # no H
        "h33050200001",  # lowercase h
        "H3305020001",  # 10 digits
        "H330502000011",  # 12 digits
        "H33050A00001",  # a letter inside
        "Y33050200001",
        "",
    ],
)
def test_institution_code_format_refused(code):
    with pytest.raises(ValidationError) as info:
        validate_institution_code(code)
    assert info.value.messages == [
        f"机构编码“{code}”格式错误：应为H加6位区划代码再加5位数字，例如H33050200001"
    ]


@pytest.mark.django_db
def test_institution_full_clean_checks_the_code(county):
    good = Institution(code="H33050200007", name="吴兴区人民医院", county=county, level=InstitutionLevel.SECONDARY)
    good.full_clean()
    bad = Institution(code="H3305020007", name="吴兴区人民医院", county=county, level=InstitutionLevel.SECONDARY)
    with pytest.raises(ValidationError) as info:
        bad.full_clean()
    assert _messages(info) == {
        "code": ["机构编码“H3305020007”格式错误：应为H加6位区划代码再加5位数字，例如H33050200001"]
    }


@pytest.mark.parametrize("code", ["330502", "110105", "820000", "650000"])
def test_division_code_accepted(code):
    validate_division_code(code)


@pytest.mark.parametrize(
    "code, message",
    [
        ("33050", "区划代码“33050”应为6位数字（GB/T 2260）"),
        ("3305021", "区划代码“3305021”应为6位数字（GB/T 2260）"),
        ("33050a", "区划代码“33050a”应为6位数字（GB/T 2260）"),
        ("990000", "区划代码“990000”的前两位不是有效的省级代码"),
        ("000000", "区划代码“000000”的前两位不是有效的省级代码"),
    ],
)
def test_division_code_refused(code, message):
    with pytest.raises(ValidationError) as info:
        validate_division_code(code)
    assert info.value.messages == [message]


@pytest.mark.django_db
def test_region_full_clean(county):
    Region(code="330521", name="德清县", parent=county.parent).full_clean()
    with pytest.raises(ValidationError) as info:
        Region(code="990521", name="无效县", parent=county.parent).full_clean()
    assert _messages(info) == {"code": ["区划代码“990521”的前两位不是有效的省级代码"]}
    county.parent = county
    with pytest.raises(ValidationError) as info:
        county.full_clean()
    assert _messages(info) == {"parent": ["上级区划不能是本区划"]}


@pytest.mark.django_db
def test_institution_clean_rules(county):
    inst = Institution(
        code="H33050200008", name="某卫生院", county=county, level=InstitutionLevel.SECONDARY,
        grassroots_kind="乡镇卫生院", designated_from=D(2024, 1, 1), designated_to=D(2023, 12, 31),
    )
    with pytest.raises(ValidationError) as info:
        inst.full_clean()
    assert _messages(info) == {
        "grassroots_kind": ["只有基层机构才填写基层机构类型"],
        "designated_to": ["定点终止日期不能早于起始日期"],
    }
    inst.level = InstitutionLevel.GRASSROOTS
    inst.designated_to = D(2024, 1, 1)  # a single day is in order
    inst.full_clean()


def test_level_band():
    assert InstitutionLevel.band(InstitutionLevel.TERTIARY) == "二级及以上"
    assert InstitutionLevel.band(InstitutionLevel.SECONDARY) == "二级及以上"
    assert InstitutionLevel.band(InstitutionLevel.PRIMARY) == "一级及基层"
    assert InstitutionLevel.band(InstitutionLevel.GRASSROOTS) == "一级及基层"


# --- one alliance at a time ---------------------------------------------------------------


@pytest.fixture
def two_alliances(county):
    first = factories.alliance(county=county)
    second = factories.alliance(county=county)
    inst = factories.institution(county=county)
    return first, second, inst


def _membership(alliance, inst, joined, left=None):
    return Membership(alliance=alliance, institution=inst, joined_on=joined, left_on=left)


def test_membership_sharing_a_single_day_is_refused(two_alliances):
    first, second, inst = two_alliances
    Membership.objects.create(alliance=first, institution=inst, joined_on=D(2023, 1, 1), left_on=D(2024, 6, 30))
    clash = _membership(second, inst, D(2024, 6, 30))
    with pytest.raises(ValidationError) as info:
        clash.full_clean()
    assert info.value.messages == [
        f"该机构在2023-01-01至2024-06-30已属于{first.name}，同一机构同一时间只能属于一个医共体"
    ]


def test_membership_back_to_back_is_accepted(two_alliances):
    first, second, inst = two_alliances
    Membership.objects.create(alliance=first, institution=inst, joined_on=D(2023, 1, 1), left_on=D(2024, 6, 30))
    nxt = _membership(second, inst, D(2024, 7, 1))
    nxt.full_clean()
    nxt.save()
    # …and a membership ending the day before the first began.
    _membership(second, inst, D(2022, 1, 1), D(2022, 12, 31)).full_clean()


def test_open_ended_membership_blocks_later_ones(two_alliances):
    first, second, inst = two_alliances
    Membership.objects.create(alliance=first, institution=inst, joined_on=D(2023, 1, 1))
    with pytest.raises(ValidationError) as info:
        _membership(second, inst, D(2030, 1, 1), D(2030, 12, 31)).full_clean()
    assert info.value.messages == [
        f"该机构在2023-01-01至至今已属于{first.name}，同一机构同一时间只能属于一个医共体"
    ]
    # An open-ended membership starting earlier also overlaps it.
    with pytest.raises(ValidationError):
        _membership(second, inst, D(2020, 1, 1)).full_clean()
    # Ending before it starts is fine.
    _membership(second, inst, D(2020, 1, 1), D(2022, 12, 31)).full_clean()


def test_membership_overlap_with_the_same_alliance_is_refused_too(two_alliances):
    first, _, inst = two_alliances
    Membership.objects.create(alliance=first, institution=inst, joined_on=D(2023, 1, 1), left_on=D(2023, 12, 31))
    with pytest.raises(ValidationError):
        _membership(first, inst, D(2023, 12, 1)).full_clean()


def test_editing_a_membership_does_not_clash_with_itself(two_alliances):
    first, _, inst = two_alliances
    row = Membership.objects.create(alliance=first, institution=inst, joined_on=D(2023, 1, 1))
    row.left_on = D(2025, 12, 31)
    row.full_clean()


def test_membership_dates_in_order(two_alliances):
    first, _, inst = two_alliances
    with pytest.raises(ValidationError) as info:
        _membership(first, inst, D(2024, 1, 2), D(2024, 1, 1)).full_clean()
    assert _messages(info) == {"left_on": ["退出日期不能早于加入日期"]}
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(alliance=first, institution=inst, joined_on=D(2024, 1, 2), left_on=D(2024, 1, 1))
    # Same day in and out is allowed by the database.
    Membership.objects.create(alliance=first, institution=inst, joined_on=D(2024, 1, 2), left_on=D(2024, 1, 2))


def test_membership_business_key_is_unique(two_alliances):
    first, _, inst = two_alliances
    Membership.objects.create(alliance=first, institution=inst, joined_on=D(2024, 1, 1), left_on=D(2024, 1, 31))
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(alliance=first, institution=inst, joined_on=D(2024, 1, 1))


# --- change history -----------------------------------------------------------------------


def test_admin_change_records_history_with_before_and_after(client, make_user, county):
    inst = factories.institution(county=county, name="吴兴区第一医院", code="H33050200100")
    user = make_user("city")
    assert client.login(username=user.username, password="pw-Test-2026")
    response = client.post(
        f"/admin/alliances/institution/{inst.pk}/change/",
        {
            "code": "H33050200100", "name": "吴兴区人民医院", "county": county.pk, "level": "三级",
            "grassroots_kind": "", "kind": "综合", "is_public": "on",
            "designated_from": "", "designated_to": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    inst.refresh_from_db()
    assert inst.name == "吴兴区人民医院"

    records = list(inst.history.order_by("history_date"))
    assert [r.history_type for r in records] == ["+", "~"]
    created, changed = records
    assert changed.history_user == user  # HistoryRequestMiddleware records who did it
    delta = changed.diff_against(created)
    changes = {c.field: (c.old, c.new) for c in delta.changes}
    assert changes == {"name": ("吴兴区第一医院", "吴兴区人民医院"), "level": ("二级", "三级")}

    page = client.get(f"/admin/alliances/institution/{inst.pk}/history/")
    assert page.status_code == 200


def test_alliance_str_and_relations(county):
    lead = factories.institution(county=county, name="吴兴区人民医院")
    alliance = Alliance.objects.create(code="YGT-WX", name="吴兴医共体", county=county, lead_hospital=lead)
    assert str(alliance) == "吴兴医共体（YGT-WX）"
    assert str(lead) == f"吴兴区人民医院（{lead.code}）"
