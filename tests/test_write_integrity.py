"""Writing is scoped like reading, and approved rows are immutable, through every admin door (SPEC §1, §7).

One `seed_demo --size small` city serves the module (rolled back at the end). Every POST is made the
way a browser would make it: the change page is fetched as the user, its form fields are read back
from the HTML, one value is replaced by a foreign one, and the form is posted. Each POST runs in a
savepoint that is rolled back after the database has been inspected, so one test's write (were
there a leak) cannot hide another's.

The sweep discovers its models from the admin registry: a newly registered model is swept without
a new test.
"""
from html.parser import HTMLParser
from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import models, transaction
from django.test import Client

from alliances.models import Alliance, Institution, Region, UserScope
from alliances.scope import ScopedModel, restrict
from contracts.models import Contract, FamilyDoctorTeam, InsuredPerson
from settlement.demo import default_year
from settlement.engine import services
from settlement.engine.models import PaymentPolicy, RunStatus, SettlementRun, UnitResult
from settlement.models import ApprovalStatus, CapitationStandard, DrgGroup, Payment, Scheme, SpecialStandard

YEAR = default_year()
OWN_COUNTY, OTHER_COUNTY = "330502", "330522"  # 吴兴区 (demo_county's) and 长兴县
ROLES = ["demo_county", "demo_health", "demo_hospital", "demo_audit"]


@pytest.fixture(scope="module")
def city(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", "--size", "small", stdout=StringIO())
        run = services.start_run(Scheme.CAPITATION, YEAR, sync=True)
        services.approve_run(run)
        yield {u.username: u for u in get_user_model().objects.filter(username__startswith="demo")}
        transaction.set_rollback(True)


@pytest.fixture
def as_user(city, django_db_blocker):
    """as_user(name) → a logged-in test client; the database stays as the module seeded it."""
    with django_db_blocker.unblock():
        def login(name):
            client = Client()
            client.force_login(city[name])
            return client

        yield login


class _FormFields(HTMLParser):
    """The name=value pairs a browser would submit from the page's main form."""

    def __init__(self):
        super().__init__()
        self.data, self._select, self._textarea, self._in_form = {}, None, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form:
            return
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "button", "file", "image"):
            if attrs.get("type") in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.data.setdefault(name, []).append(attrs.get("value", "on"))
            else:
                self.data.setdefault(name, []).append(attrs.get("value") or "")
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in attrs:
            self.data[self._select].append(attrs.get("value") or "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea][0] += data


def _form_data(client, url):
    response = client.get(url)
    if response.status_code != 200:
        return None
    parser = _FormFields()
    parser.feed(response.content.decode())
    if not parser.data:
        return None  # a read-only page: nothing to submit
    data = {name: values if len(values) != 1 else values[0] for name, values in parser.data.items()}
    data["_save"] = "保存"
    return data


def _user_scope(user):
    return UserScope.objects.select_related("region", "institution").get(user=user)


def _foreign_value(user, field):
    """A value for `field` that lies outside the user's scope, or None when the field has no geography."""
    profile = _user_scope(user)
    own_county = profile.region.code if profile.region_id else profile.institution.county.code if profile.institution_id else None
    other = OTHER_COUNTY if own_county != OTHER_COUNTY else OWN_COUNTY
    if field.name == "unit_code":
        return Alliance.objects.filter(county__code=other).values_list("code", flat=True).first()
    if not isinstance(field, models.ForeignKey):
        return None
    related = field.remote_field.model
    foreign = {
        Region: Region.objects.filter(code=other),
        Institution: Institution.objects.filter(county__code=other),
        Alliance: Alliance.objects.filter(county__code=other),
        InsuredPerson: InsuredPerson.objects.filter(county__code=other),
        FamilyDoctorTeam: FamilyDoctorTeam.objects.filter(institution__county__code=other),
    }.get(related)
    if foreign is None:
        return None
    return foreign.values_list("pk", flat=True).first()


def _snapshot(model, pk):
    return model._base_manager.filter(pk=pk).values().first()


def _scoped_admins():
    return [(model, model_admin) for model, model_admin in admin.site._registry.items() if issubclass(model, ScopedModel)]


def _url(model, view, pk=None, version=None):
    opts = model._meta
    base = f"/admin/{opts.app_label}/{opts.model_name}/"
    if view == "changelist":
        return base
    if view == "add":
        return f"{base}add/"
    if view == "history":
        return f"{base}{pk}/history/{version}/"
    return f"{base}{pk}/{view}/"


@pytest.mark.django_db
@pytest.mark.parametrize("username", ROLES)
def test_no_role_writes_outside_its_scope_through_any_form(as_user, city, username):
    client = as_user(username)
    user = city[username]
    tried = accepted_controls = 0
    for model, _ in _scoped_admins():
        obj = restrict(model._base_manager.all(), user).order_by("pk").first()
        for view, pk in (("change", obj.pk if obj else None), ("add", None)):
            if view == "change" and pk is None:
                continue
            url = _url(model, "change", pk) if view == "change" else _url(model, "add")
            data = _form_data(client, url)
            if data is None:
                continue
            for name in list(data):
                try:
                    field = model._meta.get_field(name)
                except Exception:
                    continue
                value = _foreign_value(user, field)
                if value is None or str(value) == str(data[name]):
                    continue
                forged = {**data, name: str(value)}
                with transaction.atomic():
                    before = _snapshot(model, pk) if pk else model._base_manager.count()
                    response = client.post(url, forged)
                    after = _snapshot(model, pk) if pk else model._base_manager.count()
                    assert after == before, f"{username} wrote {model.__name__}.{name}={value} through {url}"
                    assert response.status_code in (200, 403), (url, name, response.status_code)
                    transaction.set_rollback(True)
                tried += 1
            if view == "change":
                # The control: the same page posted back unchanged is accepted where the role may write,
                # so the refusals above are the write rule's, not a malformed POST's.
                with transaction.atomic():
                    response = client.post(url, data)
                    accepted_controls += response.status_code == 302
                    transaction.set_rollback(True)
    if username == "demo_audit":
        assert tried == 0 and accepted_controls == 0  # no form is even offered
    else:
        assert tried >= 3
        assert accepted_controls >= 2


def _locked_rows(city):
    approved_run = SettlementRun.objects.filter(status=RunStatus.APPROVED).first()
    return [
        CapitationStandard.objects.filter(status=ApprovalStatus.APPROVED).first(),
        SpecialStandard.objects.filter(status=ApprovalStatus.APPROVED).first(),
        PaymentPolicy.objects.filter(status=ApprovalStatus.APPROVED).first(),
        approved_run,
        UnitResult.objects.filter(run=approved_run).first(),
        DrgGroup.objects.filter(year=YEAR).first() if SettlementRun.objects.filter(
            scheme=Scheme.DRG, year=YEAR, status=RunStatus.APPROVED).exists() else None,
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["demo", *ROLES])
def test_approved_rows_refuse_change_delete_and_revert_for_every_role(as_user, city, username):
    client = as_user(username)
    rows = [row for row in _locked_rows(city) if row is not None]
    assert len(rows) >= 5
    for row in rows:
        model = type(row)
        before = _snapshot(model, row.pk)
        change_url = _url(model, "change", row.pk)
        page = client.get(change_url)
        if page.status_code == 200:
            html = page.content.decode()
            assert 'name="_save"' not in html and f"/{row.pk}/delete/" not in html
            data = _form_data(client, change_url) or {}
        else:
            data = {}
        posts = [
            (change_url, {**data, "_save": "保存"}),
            (_url(model, "delete", row.pk), {"post": "yes"}),
        ]
        version = model.history.filter(id=row.pk).order_by("history_date").first()
        if version is not None:
            posts.append((_url(model, "history", row.pk, version.history_id), data))
        for url, payload in posts:
            with transaction.atomic():
                response = client.post(url, payload)
                assert response.status_code in (403, 404), (username, url, response.status_code)
                assert _snapshot(model, row.pk) == before, (username, url)
                transaction.set_rollback(True)


# --- the reproductions of issue #11 --------------------------------------------------------------


def _other_county_alliance():
    return Alliance.objects.filter(county__code=OTHER_COUNTY).first()


@pytest.mark.django_db
def test_county_cannot_create_or_move_institutions_into_another_county(as_user, city):
    client = as_user("demo_county")
    other = Region.objects.get(code=OTHER_COUNTY)
    own = Institution.objects.filter(county__code=OWN_COUNTY).order_by("pk").first()
    data = _form_data(client, _url(Institution, "change", own.pk))
    with transaction.atomic():
        response = client.post(_url(Institution, "change", own.pk), {**data, "county": other.pk})
        assert response.status_code == 200
        assert Institution.objects.get(pk=own.pk).county.code == OWN_COUNTY
        transaction.set_rollback(True)
    with transaction.atomic():
        count = Institution.objects.count()
        response = client.post(_url(Institution, "add"), {**data, "code": "H33052299999", "county": other.pk})
        assert Institution.objects.count() == count
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_county_payment_for_another_countys_alliance_is_refused_with_a_reason(as_user, city):
    client = as_user("demo_county")
    foreign = _other_county_alliance().code
    own = Alliance.objects.filter(county__code=OWN_COUNTY).first().code
    payment = {"year": YEAR, "month": 12, "scheme": Scheme.CAPITATION, "amount": "1.00", "source": "导入", "_save": "保存"}
    with transaction.atomic():
        response = client.post(_url(Payment, "add"), {**payment, "unit_code": foreign})
        assert response.status_code == 200
        assert "不在您的数据范围内" in response.content.decode()
        assert not Payment.objects.filter(unit_code=foreign, month=12, amount="1.00").exists()
        transaction.set_rollback(True)
    with transaction.atomic():
        response = client.post(_url(Payment, "add"), {**payment, "unit_code": own})
        assert response.status_code == 302  # the same row for its own alliance goes through
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_county_may_not_load_a_preset_or_policy_for_another_county(as_user, city):
    client = as_user("demo_county")
    other = Region.objects.get(code=OTHER_COUNTY)
    with transaction.atomic():
        client.post("/admin/settlement/paymentpolicy/load-preset/", {"city": "huzhou", "year": YEAR + 1, "region": other.pk})
        assert not PaymentPolicy.objects.filter(year=YEAR + 1, region=other).exists()
        client.post(_url(PaymentPolicy, "add"), {
            "scheme": Scheme.CAPITATION, "year": YEAR + 1, "region": other.pk, "name": "别县草稿", "parameters": "{}",
            "_save": "保存",
        })
        assert not PaymentPolicy.objects.filter(year=YEAR + 1, region=other).exists()
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_approved_standard_keeps_its_amount_and_a_county_standard_cannot_be_born_approved(as_user, city):
    standard = CapitationStandard.objects.filter(status=ApprovalStatus.APPROVED, disease__isnull=True).first()
    for username in ("demo_county", "demo"):
        client = as_user(username)
        with transaction.atomic():
            response = client.post(_url(CapitationStandard, "change", standard.pk), {
                "year": standard.year, "insurance_type": standard.insurance_type, "age_band": standard.age_band,
                "amount": "1.00", "valid_years": 2, "status": ApprovalStatus.APPROVED, "_save": "保存",
            })
            assert response.status_code == 403
            assert CapitationStandard.objects.get(pk=standard.pk).amount == standard.amount
            transaction.set_rollback(True)
    client = as_user("demo_county")
    with transaction.atomic():
        response = client.post(_url(CapitationStandard, "add"), {
            "year": YEAR + 3, "insurance_type": "居民", "age_band": standard.age_band, "amount": "1.00",
            "valid_years": 2, "status": ApprovalStatus.APPROVED, "_save": "保存",
        })
        assert response.status_code == 302  # a county may propose ...
        proposal = CapitationStandard.objects.get(year=YEAR + 3, insurance_type="居民", age_band=standard.age_band)
        assert (proposal.status, proposal.approved_by_id) == (ApprovalStatus.DRAFT, None)  # ... only a draft
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_reverting_an_approved_run_to_its_computed_version_is_refused(as_user, city):
    run = SettlementRun.objects.get(scheme=Scheme.CAPITATION, year=YEAR, status=RunStatus.APPROVED)
    computed = run.history.filter(status=RunStatus.COMPUTED).order_by("-history_date").first()
    assert computed is not None
    for username in ("demo", "demo_county"):
        client = as_user(username)
        with transaction.atomic():
            response = client.post(_url(SettlementRun, "history", run.pk, computed.history_id), {"_save": "保存"})
            assert response.status_code in (403, 404)
            run.refresh_from_db()
            assert (run.status, run.approved_by_id) == (RunStatus.APPROVED, None)
            transaction.set_rollback(True)


@pytest.mark.django_db
def test_county_sees_only_its_own_units_warnings_on_a_city_wide_run(as_user, city):
    run = SettlementRun.objects.get(scheme=Scheme.CAPITATION, year=YEAR, status=RunStatus.APPROVED)
    foreign_units = UnitResult.objects.filter(run=run).exclude(unit_code__in=Alliance.objects.filter(
        county__code=OWN_COUNTY).values("code")).exclude(warnings=[])
    foreign_names = {r.unit_name for r in foreign_units}
    assert foreign_names, "the demo run has warnings of other counties' units"
    page = as_user("demo_county").get(_url(SettlementRun, "change", run.pk)).content.decode()
    warnings_block = page.split("提示", 1)[-1]
    assert not any(f"{name}：" in warnings_block for name in foreign_names)
    city_page = as_user("demo").get(_url(SettlementRun, "change", run.pk)).content.decode()
    assert any(f"{name}：" in city_page for name in foreign_names)


@pytest.mark.django_db
def test_hospital_cannot_reach_a_stranger_by_database_id(as_user, city):
    user = city["demo_hospital"]
    client = as_user("demo_hospital")
    visible = restrict(InsuredPerson.objects.all(), user).values("pk")
    stranger = InsuredPerson.objects.exclude(pk__in=visible).filter(contracts__isnull=False).first()
    team = restrict(FamilyDoctorTeam.objects.all(), user).first()
    with transaction.atomic():
        count = Contract.objects.count()
        response = client.post(_url(Contract, "add"), {
            "person": stranger.pk, "team": team.pk, "package": "", "start": f"{YEAR}-06-01", "end": "", "_save": "保存",
        })
        html = response.content.decode()
        assert response.status_code == 200 and Contract.objects.count() == count
        assert "未找到该身份证号对应的参保人" in html
        other_contract = stranger.contracts.select_related("institution").first()
        assert other_contract.institution.name not in html  # nothing about the stranger's contract leaks
        transaction.set_rollback(True)


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["visit_date__gte=notadate", "visit_date__gte=2025-13-45", "institution__id__exact=x"])
def test_an_export_with_a_bad_filter_says_so_instead_of_failing(as_user, city, query):
    client = as_user("demo")
    response = client.get(f"/admin/settlement/outpatientclaim/export/?{query}&_format=csv")
    assert response.status_code == 302
    assert response["Location"] == "/admin/settlement/outpatientclaim/"
    page = client.get(response["Location"]).content.decode()
    assert "筛选条件无效" in page


@pytest.mark.django_db
def test_an_upload_may_repeat_an_approved_standard_but_never_change_it(city, django_db_blocker, tmp_path):
    from settlement.imports.services import import_file
    from tests.settlement.test_import_support import write_csv

    standard = CapitationStandard.objects.filter(status=ApprovalStatus.APPROVED, disease__isnull=True).first()
    headers = ["年度", "险种", "年龄段", "病种编码", "人头标准(元/人·年)"]

    def row(amount):
        return [standard.year, standard.insurance_type, standard.age_band, "", amount]

    with django_db_blocker.unblock(), transaction.atomic():
        changed = import_file("capitation_standards", write_csv(tmp_path / "s.csv", headers, [row("1.00")]),
                              user=city["demo"], land_good_rows=True)
        assert not changed.created and not changed.updated and changed.bad_rows == 1
        assert "已审批的标准不能通过导入修改" in changed.errors[0].reason
        standard.refresh_from_db()
        assert standard.status == ApprovalStatus.APPROVED and standard.amount != 1

        same = import_file("capitation_standards", write_csv(tmp_path / "t.csv", headers, [row(str(standard.amount))]),
                           user=city["demo"])
        assert (same.bad_rows, same.unchanged) == (0, 1)
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_changing_an_approved_policy_takes_an_explicit_new_version_by_the_city(as_user, city):
    policy = PaymentPolicy.objects.filter(status=ApprovalStatus.APPROVED, scheme=Scheme.FAMILY_DOCTOR).first()
    changelist = _url(PaymentPolicy, "changelist")
    action = {"action": "revise_selected", "_selected_action": [policy.pk]}
    with transaction.atomic():
        as_user("demo_county").post(changelist, action)
        policy.refresh_from_db()
        assert (policy.status, policy.version) == (ApprovalStatus.APPROVED, 1)  # not the county's to open

        as_user("demo").post(changelist, action)
        policy.refresh_from_db()
        assert (policy.status, policy.version, policy.approved_by_id) == (ApprovalStatus.DRAFT, 2, None)
        approved_version = policy.history.filter(status=ApprovalStatus.APPROVED).order_by("-history_date").first()
        assert approved_version.version == 1  # the approved version stays on record
        with pytest.raises(services.SettlementError, match="尚未审批"):
            services.start_run(Scheme.FAMILY_DOCTOR, YEAR, sync=True)
        transaction.set_rollback(True)
