"""Insured persons, registrations and family-doctor contracts."""
import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from contracts.models import Contract, DiseaseRegistration, InsuredPerson
from tests import factories

D = datetime.date

# See tests/contracts/test_validators.py for the hand-worked check digits.
ID_LEAP_MALE_1980 = "330502198002290017"
ID_X_FEMALE_1949 = "11010519491231002X"


# --- insured persons ----------------------------------------------------------------------


def test_save_derives_birth_date_and_sex(county):
    person = InsuredPerson.objects.create(
        id_number=ID_LEAP_MALE_1980, name="张三", insurance_type="居民", county=county,
    )
    person.refresh_from_db()
    assert person.birth_date == D(1980, 2, 29)
    assert person.sex == "M"
    assert person.masked_id == "330502********0017"


def test_save_normalises_a_lowercase_x(county):
    person = InsuredPerson.objects.create(
        id_number="11010519491231002x", name="李四", insurance_type="职工", county=county,
    )
    person.refresh_from_db()
    assert person.id_number == ID_X_FEMALE_1949
    assert (person.birth_date, person.sex) == (D(1949, 12, 31), "F")


def test_changing_the_id_number_rederives(county):
    person = InsuredPerson.objects.create(id_number=ID_LEAP_MALE_1980, name="张三", insurance_type="居民", county=county)
    person.id_number = ID_X_FEMALE_1949
    person.save()
    person.refresh_from_db()
    assert (person.birth_date, person.sex) == (D(1949, 12, 31), "F")


def test_full_clean_of_a_new_person_derives_instead_of_asking(county):
    # Birth date and sex are never typed (SPEC §2): a new, valid person passes full_clean as is.
    person = InsuredPerson(id_number=ID_LEAP_MALE_1980, name="张三", insurance_type="居民", county=county)
    person.full_clean()
    assert (person.birth_date, person.sex) == (D(1980, 2, 29), "M")


def test_full_clean_reports_a_bad_id_once_in_chinese(county):
    person = InsuredPerson(id_number="330502198002290018", name="张三", insurance_type="居民", county=county)
    with pytest.raises(ValidationError) as info:
        person.full_clean()
    assert info.value.message_dict == {"id_number": ["身份证号校验位错误，请核对号码"]}


def test_saving_a_bad_id_is_refused(county):
    with pytest.raises(ValidationError):
        InsuredPerson.objects.create(id_number="330502198002300011", name="张三", insurance_type="居民", county=county)
    assert InsuredPerson.objects.count() == 0


# --- contracts ----------------------------------------------------------------------------


@pytest.fixture
def signing(county):
    person = factories.person(county=county)
    first = factories.institution(county=county, name="吴兴区第一卫生院")
    second = factories.institution(county=county, name="吴兴区第二卫生院")
    return person, factories.team(first), factories.team(second)


def _contract(person, team, start, end=None, **fields):
    return Contract(person=person, team=team, start=start, end=end, **fields)


def test_a_new_contract_passes_full_clean_and_takes_the_team_institution(signing):
    person, team, _ = signing
    contract = _contract(person, team, D(2024, 1, 1), D(2024, 12, 31))
    contract.full_clean()
    assert contract.institution_id == team.institution_id


def test_contract_sharing_a_single_day_is_refused(signing):
    person, first, second = signing
    Contract.objects.create(person=person, team=first, start=D(2023, 1, 1), end=D(2024, 6, 30))
    with pytest.raises(ValidationError) as info:
        _contract(person, second, D(2024, 6, 30)).full_clean()
    assert info.value.messages == [
        "该参保人在2023-01-01至2024-06-30已与吴兴区第一卫生院签约，同一时间只能有一份有效签约"
    ]


def test_back_to_back_contracts_are_accepted(signing):
    person, first, second = signing
    Contract.objects.create(person=person, team=first, start=D(2023, 1, 1), end=D(2024, 6, 30))
    nxt = _contract(person, second, D(2024, 7, 1))
    nxt.full_clean()
    nxt.save()
    assert Contract.objects.filter(person=person).count() == 2


def test_open_ended_contract_blocks_later_ones(signing):
    person, first, second = signing
    Contract.objects.create(person=person, team=first, start=D(2023, 1, 1))
    with pytest.raises(ValidationError) as info:
        _contract(person, second, D(2026, 3, 1), D(2026, 12, 31)).full_clean()
    assert info.value.messages == [
        "该参保人在2023-01-01至至今已与吴兴区第一卫生院签约，同一时间只能有一份有效签约"
    ]
    # Ending the day before it started does not overlap.
    _contract(person, second, D(2022, 1, 1), D(2022, 12, 31)).full_clean()
    # Open-ended and earlier does.
    with pytest.raises(ValidationError):
        _contract(person, second, D(2022, 1, 1)).full_clean()


def test_another_person_may_sign_the_same_days(signing, county):
    person, first, _ = signing
    Contract.objects.create(person=person, team=first, start=D(2023, 1, 1))
    _contract(factories.person(county=county), first, D(2023, 1, 1)).full_clean()


def test_editing_a_contract_does_not_clash_with_itself(signing):
    person, first, _ = signing
    contract = Contract.objects.create(person=person, team=first, start=D(2023, 1, 1))
    contract.end = D(2023, 12, 31)
    contract.full_clean()


def test_contract_dates_in_order(signing):
    person, first, _ = signing
    with pytest.raises(ValidationError) as info:
        _contract(person, first, D(2024, 3, 2), D(2024, 3, 1)).full_clean()
    assert info.value.message_dict == {"end": ["解约日期不能早于签约日期"]}
    with pytest.raises(ValidationError) as info:
        _contract(person, first, D(2024, 3, 2), verified_on=D(2024, 3, 1)).full_clean()
    assert info.value.message_dict == {"verified_on": ["核实日期不能早于签约日期"]}
    with pytest.raises(IntegrityError), transaction.atomic():
        Contract.objects.create(person=person, team=first, start=D(2024, 3, 2), end=D(2024, 3, 1))


def test_contract_institution_follows_the_team(signing):
    person, first, second = signing
    contract = Contract.objects.create(
        person=person, team=first, start=D(2024, 1, 1), institution=second.institution,  # a wrong hint
    )
    contract.refresh_from_db()
    assert contract.institution_id == first.institution_id
    contract.team = second
    contract.save()
    contract.refresh_from_db()
    assert contract.institution_id == second.institution_id


def test_contract_history_records_the_verification(signing, client, make_user, county):
    person, first, _ = signing
    contract = Contract.objects.create(person=person, team=first, start=D(2024, 1, 1))
    health = make_user("health", county.code)
    assert client.login(username=health.username, password="pw-Test-2026")
    response = client.post(
        f"/admin/contracts/contract/{contract.pk}/change/",
        {"person": person.pk, "team": first.pk, "package": "", "start": "2024-01-01", "end": "", "verified_on": "2024-01-15"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    created, changed = contract.history.order_by("history_date")
    delta = changed.diff_against(created)
    changes = {c.field: (c.old, c.new) for c in delta.changes}
    assert changes == {"verified_on": (None, D(2024, 1, 15)), "verified_by": (None, health.pk)}
    assert changed.history_user == health


# --- disease registrations ----------------------------------------------------------------


def test_registration_dates_in_order(county):
    person = factories.person(county=county)
    disease = factories.disease()
    with pytest.raises(ValidationError) as info:
        DiseaseRegistration(person=person, disease=disease, filed_on=D(2024, 5, 2), ended_on=D(2024, 5, 1)).full_clean()
    assert info.value.message_dict == {"ended_on": ["终止日期不能早于备案日期"]}
    with pytest.raises(IntegrityError), transaction.atomic():
        DiseaseRegistration.objects.create(person=person, disease=disease, filed_on=D(2024, 5, 2), ended_on=D(2024, 5, 1))
    DiseaseRegistration.objects.create(person=person, disease=disease, filed_on=D(2024, 5, 2), ended_on=D(2024, 5, 2))


def test_default_service_package_is_seeded(db):
    from contracts.models import ServicePackage

    package = ServicePackage.default()
    assert package is not None
    assert str(package.fee) == "100.00"
    assert package.items.count() == 5


def test_clean_still_reports_a_bad_id_when_the_field_check_was_skipped(county):
    person = InsuredPerson(id_number="330502198002290018", name="张三", insurance_type="居民", county=county)
    with pytest.raises(ValidationError) as info:
        person.full_clean(exclude=["id_number"])
    assert info.value.message_dict == {"id_number": ["身份证号校验位错误，请核对号码"]}
