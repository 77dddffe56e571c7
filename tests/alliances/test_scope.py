"""Who sees which rows (SPEC §1), through `restrict` and through the admin."""
import datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from alliances.models import Alliance, Institution, InstitutionLevel, Membership, Region, UserScope
from alliances.scope import restrict, scope_for
from contracts.models import Contract, DiseaseRegistration, FamilyDoctorTeam, InsuredPerson
from settlement.models import Budget, Job, JobKind, OutpatientClaim, Scheme
from tests import factories

D = datetime.date
PASSWORD = "pw-Test-2026"


def _claim(inst, person, serial):
    return OutpatientClaim.objects.create(
        institution=inst, serial=serial, person=person, visit_date=D(2024, 3, 1), insurance_type="居民",
        visit_type="普通门诊", total_cost=Decimal("100.00"), fund_paid=Decimal("60.00"), personal_paid=Decimal("40.00"),
    )


def _budget(unit_code):
    return Budget.objects.create(year=2024, scheme=Scheme.DRG, unit_code=unit_code, amount=Decimal("1000.00"))


@pytest.fixture
def world(county, other_county):
    """Two counties. In 吴兴区: an alliance led by LA with member MA, and NA outside it. In 南浔区: IB leads AB."""
    la = factories.institution(county=county, code="H33050200001", name="吴兴区人民医院", level=InstitutionLevel.SECONDARY)
    ma = factories.institution(county=county, code="H33050200002", name="织里镇卫生院", level=InstitutionLevel.GRASSROOTS)
    na = factories.institution(county=county, code="H33050200003", name="吴兴区民营医院", level=InstitutionLevel.PRIMARY)
    ib = factories.institution(county=other_county, code="H33050300001", name="南浔区人民医院")
    aa = factories.alliance(lead=la, members=[ma], code="YGT-WX")
    ab = factories.alliance(lead=ib, code="YGT-NX")

    p_ma = factories.person(county=county, name="甲")
    p_na = factories.person(county=county, name="乙")
    p_ib = factories.person(county=other_county, name="丙")
    c_ma = factories.contract(p_ma, ma, D(2024, 1, 1))
    c_na = factories.contract(p_na, na, D(2024, 1, 1))
    c_ib = factories.contract(p_ib, ib, D(2024, 1, 1))

    claims = {
        "la": _claim(la, p_ma, "LA-1"), "ma": _claim(ma, p_ma, "MA-1"),
        "na": _claim(na, p_na, "NA-1"), "ib": _claim(ib, p_ib, "IB-1"),
    }
    budgets = {
        code: _budget(code)
        for code in ["YGT-WX", "YGT-NX", "H33050200001", "H33050200002", "H33050200003", "H33050300001",
                     "330502-二级及以上", "330502-一级及基层", "330503-二级及以上", "3305021-二级及以上"]
    }
    jobs = {
        "city": Job.objects.create(kind=JobKind.SETTLEMENT, title="全市结算"),
        "wx": Job.objects.create(kind=JobKind.SETTLEMENT, title="吴兴结算", region=county),
        "ma": Job.objects.create(kind=JobKind.IMPORT, title="织里导入", region=county, institution=ma),
        "na": Job.objects.create(kind=JobKind.IMPORT, title="民营导入", region=county, institution=na),
        "ib": Job.objects.create(kind=JobKind.IMPORT, title="南浔导入", region=other_county, institution=ib),
    }
    return SimpleNamespace(
        county=county, other_county=other_county, la=la, ma=ma, na=na, ib=ib, aa=aa, ab=ab,
        p_ma=p_ma, p_na=p_na, p_ib=p_ib, c_ma=c_ma, c_na=c_na, c_ib=c_ib,
        claims=claims, budgets=budgets, jobs=jobs,
    )


def _visible(model, user, key):
    return set(restrict(model.objects.all(), user).values_list(key, flat=True))


def _everything(world):
    return {
        "institutions": {"H33050200001", "H33050200002", "H33050200003", "H33050300001"},
        "alliances": {"YGT-WX", "YGT-NX"},
        "memberships": {("YGT-WX", "H33050200001"), ("YGT-WX", "H33050200002"), ("YGT-NX", "H33050300001")},
        "persons": {"甲", "乙", "丙"},
        "contracts": {"甲", "乙", "丙"},
        "claims": {"LA-1", "MA-1", "NA-1", "IB-1"},
        "budgets": set(world.budgets),
        "jobs": {"全市结算", "吴兴结算", "织里导入", "民营导入", "南浔导入"},
        "regions": {"330500", "330502", "330503"},
    }


def _what_user_sees(user):
    return {
        "institutions": _visible(Institution, user, "code"),
        "alliances": _visible(Alliance, user, "code"),
        "memberships": set(
            restrict(Membership.objects.all(), user).values_list("alliance__code", "institution__code")
        ),
        "persons": _visible(InsuredPerson, user, "name"),
        "contracts": _visible(Contract, user, "person__name"),
        "claims": _visible(OutpatientClaim, user, "serial"),
        "budgets": _visible(Budget, user, "unit_code"),
        "jobs": _visible(Job, user, "title"),
        "regions": _visible(Region, user, "code"),
    }


NOTHING = {
    "institutions": set(), "alliances": set(), "memberships": set(), "persons": set(), "contracts": set(),
    "claims": set(), "budgets": set(), "jobs": set(), "regions": set(),
}


@pytest.mark.parametrize("role", ["city", "auditor"])
def test_city_wide_roles_see_everything(world, make_user, role):
    assert _what_user_sees(make_user(role)) == _everything(world)


@pytest.mark.parametrize("role", ["county", "health"])
def test_regional_roles_see_their_county(world, make_user, role):
    user = make_user(role, "330502")
    assert _what_user_sees(user) == {
        "institutions": {"H33050200001", "H33050200002", "H33050200003"},
        "alliances": {"YGT-WX"},
        "memberships": {("YGT-WX", "H33050200001"), ("YGT-WX", "H33050200002")},
        "persons": {"甲", "乙"},
        "contracts": {"甲", "乙"},
        "claims": {"LA-1", "MA-1", "NA-1"},
        # Its alliance, its institutions and its DRG pools `<county>-<band>`, not a code that merely
        # starts with the same digits.
        "budgets": {"YGT-WX", "H33050200001", "H33050200002", "H33050200003", "330502-二级及以上", "330502-一级及基层"},
        "jobs": {"吴兴结算", "织里导入", "民营导入"},
        "regions": {"330500", "330502", "330503"},  # the region list is reference data
    }


def test_other_county_sees_only_its_own(world, make_user):
    user = make_user("county", "330503")
    seen = _what_user_sees(user)
    assert seen["institutions"] == {"H33050300001"}
    assert seen["alliances"] == {"YGT-NX"}
    assert seen["persons"] == {"丙"}
    assert seen["claims"] == {"IB-1"}
    assert seen["budgets"] == {"YGT-NX", "H33050300001", "330503-二级及以上"}
    assert seen["jobs"] == {"南浔导入"}


def test_member_hospital_sees_itself_only(world, make_user):
    user = make_user("hospital", "H33050200002")
    assert _what_user_sees(user) == {
        "institutions": {"H33050200002"},
        "alliances": {"YGT-WX"},  # the alliance it belongs to
        "memberships": {("YGT-WX", "H33050200002")},
        "persons": {"甲"},  # people it has signed
        "contracts": {"甲"},
        "claims": {"MA-1"},
        "budgets": {"H33050200002"},
        "jobs": {"织里导入"},
        "regions": {"330500", "330502", "330503"},
    }


def test_lead_hospital_sees_its_alliance(world, make_user):
    user = make_user("hospital", "H33050200001")
    assert _what_user_sees(user) == {
        "institutions": {"H33050200001", "H33050200002"},
        "alliances": {"YGT-WX"},
        "memberships": {("YGT-WX", "H33050200001"), ("YGT-WX", "H33050200002")},
        "persons": {"甲"},
        "contracts": {"甲"},
        "claims": {"LA-1", "MA-1"},  # members' claims, not NA's
        "budgets": {"YGT-WX", "H33050200001", "H33050200002"},
        "jobs": {"织里导入"},
        "regions": {"330500", "330502", "330503"},
    }


def test_non_member_hospital_does_not_see_the_alliance(world, make_user):
    user = make_user("hospital", "H33050200003")
    seen = _what_user_sees(user)
    assert seen["institutions"] == {"H33050200003"}
    assert seen["alliances"] == set()
    assert seen["claims"] == {"NA-1"}
    assert seen["persons"] == {"乙"}
    assert seen["budgets"] == {"H33050200003"}


def test_user_without_scope_sees_nothing(world):
    user = get_user_model().objects.create_user("noscope", password=PASSWORD, is_staff=True)
    assert _what_user_sees(user) == NOTHING


def test_inactive_user_sees_nothing(world, make_user):
    user = make_user("city")
    user.is_active = False
    user.save()
    fresh = get_user_model().objects.get(pk=user.pk)
    assert _what_user_sees(fresh) == NOTHING


def test_scope_profile_without_its_region_sees_nothing(world):
    user = get_user_model().objects.create_user("broken", is_staff=True)
    UserScope.objects.create(user=user, role="county")  # no region: invalid, must not mean "all"
    assert _what_user_sees(user) == NOTHING


def test_anonymous_sees_nothing(world):
    from django.contrib.auth.models import AnonymousUser

    assert restrict(Institution.objects.all(), AnonymousUser()).count() == 0
    assert restrict(Institution.objects.all(), None).count() == 0
    assert scope_for(None).role is None


# --- through the admin --------------------------------------------------------------------


def _form_errors(response):
    import re

    return re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S)


def _login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_hospital_cannot_open_another_institutions_pages(world, make_user, client):
    _login(client, make_user("hospital", "H33050200002"))
    assert client.get(f"/admin/alliances/institution/{world.ma.pk}/change/").status_code == 200
    for url in [
        f"/admin/alliances/institution/{world.na.pk}/change/",
        f"/admin/alliances/institution/{world.ib.pk}/change/",
        f"/admin/alliances/institution/{world.na.pk}/history/",
        f"/admin/alliances/institution/{world.ib.pk}/delete/",
        f"/admin/contracts/contract/{world.c_na.pk}/change/",
        f"/admin/contracts/contract/{world.c_ib.pk}/history/",
        f"/admin/contracts/insuredperson/{world.p_ib.pk}/change/",
        f"/admin/settlement/outpatientclaim/{world.claims['na'].pk}/change/",
        f"/admin/settlement/outpatientclaim/{world.claims['ib'].pk}/history/",
        f"/admin/settlement/budget/{world.budgets['YGT-WX'].pk}/change/",
        f"/admin/settlement/job/{world.jobs['na'].pk}/change/",
        "/admin/alliances/institution/999999/change/",
        "/admin/alliances/institution/not-a-number/change/",
    ]:
        response = client.get(url)
        assert response.status_code in (403, 404), url
        assert world.na.name not in response.content.decode()


def test_hospital_cannot_open_another_institutions_history_versions(world, make_user, client):
    _login(client, make_user("hospital", "H33050200002"))
    record = world.ib.history.latest()
    response = client.get(f"/admin/alliances/institution/{world.ib.pk}/history/{record.history_id}/")
    assert response.status_code in (403, 404)
    own = world.c_ma.history.latest()
    assert client.get(f"/admin/contracts/contract/{world.c_ma.pk}/history/{own.history_id}/").status_code == 200
    other = world.c_na.history.latest()
    response = client.get(f"/admin/contracts/contract/{world.c_na.pk}/history/{other.history_id}/")
    assert response.status_code in (403, 404)


def test_county_changelist_and_autocomplete_stay_in_county(world, make_user, client):
    _login(client, make_user("county", "330502"))
    page = client.get("/admin/alliances/institution/").content.decode()
    assert "H33050200001" in page and "H33050200003" in page
    assert "H33050300001" not in page and "南浔区人民医院" not in page

    # Even searching for it by code.
    page = client.get("/admin/alliances/institution/", {"q": "H33050300001"}).content.decode()
    assert "南浔区人民医院" not in page

    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "alliances", "model_name": "alliance", "field_name": "lead_hospital", "term": ""},
    )
    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert ids == {str(world.la.pk), str(world.ma.pk), str(world.na.pk)}

    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "settlement", "model_name": "outpatientclaim", "field_name": "institution", "term": "南浔"},
    )
    assert response.status_code == 200
    assert response.json()["results"] == []

    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "contracts", "model_name": "contract", "field_name": "person", "term": ""},
    )
    ids = {row["id"] for row in response.json()["results"]}
    assert ids == {str(world.p_ma.pk), str(world.p_na.pk)}


def test_hospital_autocomplete_offers_only_its_teams(world, make_user, client):
    _login(client, make_user("hospital", "H33050200002"))
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "contracts", "model_name": "contract", "field_name": "team", "term": ""},
    )
    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert ids == {str(world.c_ma.team_id)}


def test_lead_hospital_sees_member_claims_in_the_changelist(world, make_user, client):
    _login(client, make_user("hospital", "H33050200001"))
    page = client.get("/admin/settlement/outpatientclaim/").content.decode()
    assert "LA-1" in page and "MA-1" in page
    assert "NA-1" not in page and "IB-1" not in page
    assert client.get(f"/admin/settlement/outpatientclaim/{world.claims['ma'].pk}/change/").status_code == 200
    assert client.get(f"/admin/settlement/outpatientclaim/{world.claims['na'].pk}/change/").status_code in (403, 404)


def test_hospital_cannot_attach_a_foreign_team_by_forged_post(world, make_user, client):
    _login(client, make_user("hospital", "H33050200002"))
    foreign_team = world.c_ib.team
    response = client.post(
        f"/admin/contracts/contract/{world.c_ma.pk}/change/",
        {"person": world.p_ma.id_number, "team": foreign_team.pk, "package": "", "start": "2024-01-01", "end": ""},
    )
    assert response.status_code == 200  # the form comes back with an error
    world.c_ma.refresh_from_db()
    assert world.c_ma.team_id != foreign_team.pk
    assert world.c_ma.institution_id == world.ma.pk


def test_auditor_reads_but_cannot_write(world, make_user, client):
    _login(client, make_user("auditor"))
    url = f"/admin/alliances/institution/{world.ib.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "南浔区人民医院" in html
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    assert client.get(f"/admin/alliances/institution/{world.ib.pk}/history/").status_code == 200

    response = client.post(url, {
        "code": "H33050300001", "name": "改过的名字", "county": world.other_county.pk, "level": "二级",
        "kind": "综合", "is_public": "on",
    })
    assert response.status_code == 403
    world.ib.refresh_from_db()
    assert world.ib.name == "南浔区人民医院"

    assert client.get("/admin/alliances/institution/add/").status_code == 403
    assert client.get(f"/admin/alliances/institution/{world.ib.pk}/delete/").status_code == 403
    assert client.get(f"/admin/settlement/budget/{world.budgets['YGT-NX'].pk}/change/").status_code == 200


def _contract_post(contract, by_card=False, **extra):
    # Hospital staff name the person by the full ID number (the card), everyone else picks the row.
    data = {
        "person": contract.person.id_number if by_card else contract.person_id, "team": contract.team_id, "package": "",
        "start": contract.start.isoformat(), "end": "",
    }
    data.update(extra)
    return data


def test_hospital_cannot_set_the_verification_date(world, make_user, client):
    _login(client, make_user("hospital", "H33050200002"))
    url = f"/admin/contracts/contract/{world.c_ma.pk}/change/"
    html = client.get(url).content.decode()
    assert 'name="verified_on"' not in html  # shown read-only
    assert "核实日期" in html

    response = client.post(url, _contract_post(world.c_ma, by_card=True, verified_on="2024-02-01", verified_by=1))
    assert response.status_code == 302
    world.c_ma.refresh_from_db()
    assert world.c_ma.verified_on is None
    assert world.c_ma.verified_by_id is None


def test_hospital_adding_a_contract_cannot_verify_it(world, make_user, client):
    user = make_user("hospital", "H33050200002")
    _login(client, user)
    person = factories.person(county=world.county, name="丁")
    # Visible to the hospital because it filed the person's chronic-disease registration.
    DiseaseRegistration.objects.create(
        person=person, disease=factories.disease(), filed_on=D(2024, 4, 1), approving_institution=world.ma,
    )
    team = FamilyDoctorTeam.objects.get(pk=world.c_ma.team_id)
    response = client.post("/admin/contracts/contract/add/", {
        "person": person.id_number, "team": team.pk, "package": "", "start": "2024-05-01", "end": "",
        "verified_on": "2024-05-01",
    })
    assert response.status_code == 302, _form_errors(response)
    contract = Contract.objects.get(person=person)
    assert contract.verified_on is None
    assert contract.institution_id == world.ma.pk


def test_hospital_can_sign_a_person_of_its_county_not_yet_linked_to_it(world, make_user, client):
    _login(client, make_user("hospital", "H33050200002"))
    person = factories.person(county=world.county, name="戊")
    response = client.post("/admin/contracts/contract/add/", {
        "person": person.id_number, "team": world.c_ma.team_id, "package": "", "start": "2024-05-01", "end": "",
    })
    assert response.status_code == 302, _form_errors(response)
    assert person.contracts.get().institution.code == "H33050200002"


def test_hospital_finds_an_unlinked_person_only_by_the_full_id_number(world, make_user, client):
    _login(client, make_user("hospital", "H33050200002"))
    person = factories.person(county=world.county, name="己")
    url = "/admin/autocomplete/?app_label=contracts&model_name=contract&field_name=person&term="

    def found(term):
        return [row["id"] for row in client.get(url + term).json()["results"]]

    assert found(person.id_number) == [str(person.pk)]
    assert found(person.id_number[:17]) == []  # no partial matches of strangers
    assert found("己") == []  # nor by name
    # The changelist still does not list the person: the card lookup is for picking only.
    assert "己" not in client.get("/admin/contracts/insuredperson/?q=" + person.id_number).content.decode()


def test_health_user_verifies_and_is_recorded(world, make_user, client):
    user = make_user("health", "330502")
    _login(client, user)
    url = f"/admin/contracts/contract/{world.c_ma.pk}/change/"
    assert 'name="verified_on"' in client.get(url).content.decode()
    response = client.post(url, _contract_post(world.c_ma, verified_on="2024-02-01"))
    assert response.status_code == 302
    world.c_ma.refresh_from_db()
    assert world.c_ma.verified_on == D(2024, 2, 1)
    assert world.c_ma.verified_by_id == user.pk

    # …and cannot verify another county's contract.
    url = f"/admin/contracts/contract/{world.c_ib.pk}/change/"
    assert client.post(url, _contract_post(world.c_ib, verified_on="2024-02-01")).status_code in (403, 404)
    world.c_ib.refresh_from_db()
    assert world.c_ib.verified_on is None


def test_health_user_has_no_budget_pages(world, make_user, client):
    _login(client, make_user("health", "330502"))
    assert client.get("/admin/settlement/budget/").status_code == 403
    assert client.get(f"/admin/settlement/budget/{world.budgets['YGT-WX'].pk}/change/").status_code in (403, 404)


def test_county_user_cannot_read_other_counties_accounts(world, make_user, client):
    make_user("hospital", "H33050300001", username="nanxun-hospital")
    make_user("county", "330502", username="wuxing-colleague")
    _login(client, make_user("county", "330502"))
    page = client.get("/admin/alliances/userscope/")
    if page.status_code == 200:
        html = page.content.decode()
        assert "nanxun-hospital" not in html
        assert "wuxing-colleague" in html
    else:
        assert page.status_code == 403


# --- role groups --------------------------------------------------------------------------


def _codenames(group_name):
    return set(Group.objects.get(name=group_name).permissions.values_list("codename", flat=True))


def test_role_groups_exist_after_migrate(db):
    assert set(Group.objects.values_list("name", flat=True)) >= {"市医保局", "县区医保局", "卫健委", "医疗机构财务", "审计"}


def test_auditor_holds_only_view_permissions(db):
    perms = _codenames("审计")
    assert perms and all(p.startswith("view_") for p in perms)
    assert {"view_institution", "view_historicalinstitution", "view_budget", "view_job", "view_contract"} <= perms


def test_city_holds_every_portal_permission(db):
    perms = _codenames("市医保局")
    assert {"add_budget", "change_budget", "delete_budget", "change_institution", "delete_contract"} <= perms


def test_county_cannot_delete_and_can_edit_budgets(db):
    perms = _codenames("县区医保局")
    assert not any(p.startswith("delete_") for p in perms)
    assert {"add_budget", "change_budget", "change_institution", "change_contract", "view_drggroup"} <= perms
    # Reference data approved by the city is not the county's to change.
    assert "change_drggroup" not in perms and "change_region" not in perms


def test_health_verifies_contracts_but_has_no_money(db):
    perms = _codenames("卫健委")
    assert {"view_contract", "change_contract", "add_contract", "change_familydoctorteam"} <= perms
    assert not perms & {"view_budget", "change_budget", "add_budget", "view_payment", "view_outpatientclaim"}
    assert not any(p.startswith("delete_") for p in perms)


def test_hospital_uploads_but_does_not_edit_master_data(db):
    perms = _codenames("医疗机构财务")
    assert {"add_outpatientclaim", "add_contract", "view_budget", "view_institution"} <= perms
    assert not perms & {"change_institution", "add_institution", "change_budget", "add_budget", "change_alliance"}
    assert not any(p.startswith("delete_") for p in perms)


# --- history "revert" is a write too -------------------------------------------------------


def test_auditor_cannot_write_through_the_history_revert_form(world, make_user, client):
    world.ib.name = "南浔区第一人民医院"
    world.ib.save()
    old = world.ib.history.order_by("history_date").first()
    _login(client, make_user("auditor"))
    url = f"/admin/alliances/institution/{world.ib.pk}/history/{old.history_id}/"
    assert client.get(url).status_code == 200  # reading an old version is the auditor's job
    response = client.post(url, {
        "code": "H33050300001", "name": "南浔区人民医院", "county": world.other_county.pk, "level": "二级",
        "kind": "综合", "is_public": "on",
    })
    assert response.status_code == 403
    world.ib.refresh_from_db()
    assert world.ib.name == "南浔区第一人民医院"


def test_hospital_cannot_restore_a_revoked_verification_by_reverting(world, make_user, client):
    health = make_user("health", "330502")
    contract = world.c_ma
    contract.verified_on, contract.verified_by = D(2024, 1, 5), health
    contract.save()
    verified_version = contract.history.order_by("-history_date").first()
    contract.verified_on = contract.verified_by = None  # the health commission withdrew it
    contract.save()

    _login(client, make_user("hospital", "H33050200002"))
    response = client.post(
        f"/admin/contracts/contract/{contract.pk}/history/{verified_version.history_id}/", _contract_post(contract, by_card=True),
    )
    assert response.status_code in (302, 403)
    contract.refresh_from_db()
    assert contract.verified_on is None
    assert contract.verified_by_id is None


def test_hospital_editing_keeps_an_existing_verification(world, make_user, client):
    health = make_user("health", "330502")
    contract = world.c_ma
    contract.verified_on, contract.verified_by = D(2024, 1, 5), health
    contract.save()
    _login(client, make_user("hospital", "H33050200002"))
    response = client.post(
        f"/admin/contracts/contract/{contract.pk}/change/", _contract_post(contract, by_card=True, end="2024-12-31"),
    )
    assert response.status_code == 302, _form_errors(response)
    contract.refresh_from_db()
    assert contract.end == D(2024, 12, 31)
    assert (contract.verified_on, contract.verified_by_id) == (D(2024, 1, 5), health.pk)


def test_changelist_filters_do_not_list_other_alliances(world, make_user, client):
    _login(client, make_user("hospital", "H33050200002"))
    html = client.get("/admin/alliances/membership/").content.decode()
    assert "YGT-WX" in html
    assert "YGT-NX" not in html and world.ab.name not in html
    _login(client, make_user("county", "330502"))
    html = client.get("/admin/alliances/membership/").content.decode()
    assert "YGT-NX" not in html and world.ab.name not in html


def test_jobs_carry_the_submitters_scope(world, make_user):
    from settlement import jobs

    hospital = make_user("hospital", "H33050200002")
    county_user = make_user("county", "330503")
    city = make_user("city")
    by_hospital = jobs.create_job(JobKind.IMPORT, "织里上传", user=hospital)
    by_county = jobs.create_job(JobKind.SETTLEMENT, "南浔结算", user=county_user)
    by_city = jobs.create_job(JobKind.REPORT, "全市报表", user=city)
    anonymous = jobs.create_job(JobKind.REPORT, "定时任务")
    assert (by_hospital.region_id, by_hospital.institution_id) == (world.county.pk, world.ma.pk)
    assert (by_county.region_id, by_county.institution_id) == (world.other_county.pk, None)
    assert (by_city.region_id, by_city.institution_id, by_city.user_id) == (None, None, city.pk)
    assert (anonymous.region_id, anonymous.institution_id, anonymous.user_id) == (None, None, None)

    assert "织里上传" in _visible(Job, make_user("county", "330502"), "title")
    assert "织里上传" in _visible(Job, make_user("hospital", "H33050200001"), "title")  # the lead hospital
    assert "织里上传" not in _visible(Job, make_user("hospital", "H33050200003"), "title")
    assert _visible(Job, make_user("county", "330503"), "title") == {"南浔导入", "南浔结算"}
