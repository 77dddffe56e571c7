"""The admin pages a clerk opens, timed for every demo role on the `seed_demo --size city` data.

Logs in as each of the five demo roles (demo, demo_county, demo_health, demo_hospital, demo_audit)
and requests, through Django's whole request stack (middleware, sessions, the admin, scope), a fixed
list of pages: every changelist the role may open; on the big tables each filter choice, each
sortable column, a search of each kind (an ID number, an institution code, a serial, a name) and a
deep page, both as typed (?p=500, read by its offset) and as reached by page 499's 下一页 link (after the
last row's key, where the list's order allows it); a row's change page on each big table, and the
autocompletes of a claim's page; the KPI dashboard; the DRG 运行分析 page, its pool drill-down and its
xlsx export; a unit statement and its printable 清算单; the printable list of stand-alone recoveries.
Each page is requested --repeat times after one warm-up; the script prints p50/p95 per page and role,
and the worst pages.
The budget is 300 ms at p95 (issue 13). Figures are printed, never asserted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_city SECRET_KEY=x PLAIN_HTTP=1 \
        .venv/bin/python bench/admin_bench.py [--repeat 5] [--role demo_hospital] [--only claim] [--skip dashboard]
"""
import argparse
import html
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib import admin  # noqa: E402
from django.contrib.admin.utils import get_fields_from_path  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402

ROLES = ["demo", "demo_county", "demo_health", "demo_hospital", "demo_audit"]
BUDGET_MS = 300
# Tables with millions of rows at city scale: their changelists get every filter, sort and search.
BIG = {
    "settlement.outpatientclaim", "settlement.inpatientcase", "settlement.familydoctorservice",
    "contracts.insuredperson", "contracts.familydoctorcontract", "contracts.diseaseregistration",
    # a view over every claim and case of a computed year, and two tables scoped through joins
    "settlement.benefitfigure", "settlement.referral", "settlement.relocation",
}
# Pages whose every filter, sort, search and deep page is timed again with these parameters added:
# the 核对 page under 全部 (every claim and case of a computed year, not only the differing ones).
ALSO_UNDER = {"settlement.benefitfigure": [("全部", {"differs": "all"}), ("无适用规则", {"differs": "unruled"})]}
# Pages whose filters are timed at each of their choices (SimpleListFilters name no bench_value; a county or
# a level may match none of a role's rows, which an index walk in the list's order reads to its end).
EVERY_CHOICE = {"settlement.benefitfigure"}


class FakeRequest:
    """What ModelAdmin.has_view_permission and get_list_filter need from a request."""

    def __init__(self, user):
        self.user = user
        self.GET = {}


def samples():
    """One real value of each search shape, read once."""
    from alliances.models import Institution
    from contracts.models import InsuredPerson
    from settlement.models import InpatientCase, OutpatientClaim

    claim = OutpatientClaim.objects.order_by("pk").select_related("institution", "person").first()
    case = InpatientCase.objects.order_by("pk").first()
    person = InsuredPerson.objects.order_by("pk").first()
    return {
        "id_number": person.id_number if person else "",
        "institution": claim.institution.code if claim else Institution.objects.values_list("code", flat=True).first(),
        "claim_serial": claim.serial if claim else "",
        "case_serial": case.serial if case else "",
        "surname": person.name[:1] if person else "张",
    }


def changelist_pages(model_admin, request, sample):
    opts = model_admin.model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    label = f"{opts.app_label}.{opts.model_name}"
    pages = [(f"{opts.verbose_name} 列表", url)]
    if label not in BIG:
        return pages
    pages.append((f"{opts.verbose_name} 第500页", f"{url}?p=500"))
    sortable = model_admin.get_sortable_by(request)
    # `o=N` counts list_display from 1 here: position 0 is the action checkbox.
    for position, name in enumerate(model_admin.get_list_display(request), start=1):
        if name in sortable:
            pages.append((f"{opts.verbose_name} 按第{position}列倒序", f"{url}?o=-{position}"))
    for spec in model_admin.get_list_filter(request):
        if isinstance(spec, (list, tuple)) and issubclass(spec[1], admin.EmptyFieldListFilter):
            pages.append((f"{opts.verbose_name} 筛选 {spec[0]}为空", f"{url}?{urlencode({spec[0] + '__isempty': 1})}"))
            continue
        if isinstance(spec, (list, tuple)):  # (field, a FieldListFilter of the field's own parameters)
            spec = spec[0]
        if isinstance(spec, str):
            field = get_fields_from_path(model_admin.model, spec)[-1]
            if field.is_relation:
                values = list(field.related_model._default_manager.order_by("pk").values_list("pk", flat=True))
                key = f"{spec}__id__exact"
            else:
                values = [c for c, _ in (field.choices or [])] or [1]
                key = f"{spec}__exact"
            # The first choice everywhere; every choice where a choice may match none of a role's rows.
            for value in values if label in EVERY_CHOICE else values[:1]:
                suffix = f"={value}" if label in EVERY_CHOICE else ""
                pages.append((f"{opts.verbose_name} 筛选 {spec}{suffix}", f"{url}?{urlencode({key: value})}"))
        elif getattr(spec, "bench_value", None):  # a SimpleListFilter that names a typical choice
            pages.append((f"{opts.verbose_name} 筛选 {spec.parameter_name}",
                          f"{url}?{urlencode({spec.parameter_name: spec.bench_value})}"))
        elif label in EVERY_CHOICE and hasattr(spec, "lookups"):
            for value, _ in spec(request, {}, model_admin.model, model_admin).lookup_choices or ():
                pages.append((f"{opts.verbose_name} 筛选 {spec.parameter_name}={value}",
                               f"{url}?{urlencode({spec.parameter_name: value})}"))
    searches = {
        "身份证号": sample["id_number"], "机构编码": sample["institution"],
        "流水号": sample["case_serial"] if opts.model_name == "inpatientcase" else sample["claim_serial"],
        "姓氏": sample["surname"], "区划前缀": "330502",
    }
    if model_admin.get_search_fields(request):
        for kind, term in searches.items():
            if term:
                pages.append((f"{opts.verbose_name} 搜索{kind}", f"{url}?{urlencode({'q': term})}"))
    for name, params in ALSO_UNDER.get(label, ()):
        extra = urlencode(params)
        key = next(iter(params))
        pages += [(f"{title}（{name}）", f"{page}{'&' if '?' in page else '?'}{extra}")
                  for title, page in list(pages) if f"{key}=" not in page]
    return [page for page in pages if page[1]]


def page_list(user, sample):
    request = FakeRequest(user)
    pages = []
    for model, model_admin in admin.site._registry.items():
        if model_admin.has_view_permission(request):
            pages.extend(changelist_pages(model_admin, request, sample))
    pages.append(("指标看板", reverse("alliances_dashboard") + "?year=2025"))
    if user.has_perm("settlement.view_drganalysis"):  # the DRG page's pool drill-down and its export
        drg = reverse("admin:settlement_drganalysis_changelist")
        pages.append(("DRG运行分析 统筹池病组明细", f"{drg}?year=2025&institution=0"))
        pages.append(("DRG运行分析 导出xlsx", f"{drg}?year=2025&_export=xlsx"))
    pages += change_and_autocomplete_pages(user, sample)
    if user.has_perm("settlement.view_finding"):  # the printable list of the year's stand-alone recoveries
        pages.append(("单独追回清单（打印）", reverse("admin:settlement_finding_standalone") + "?year=2025"))
    from settlement.models import UnitResult

    unit = _first_visible(UnitResult, user)
    if unit is not None:
        pages.append(("单位结算结果", reverse("admin:settlement_unitresult_change", args=[unit.pk])))
        pages.append(("清算单（打印）", reverse("admin:settlement_unitresult_statement", args=[unit.pk])))
    if user.has_perm("settlement.view_benefitfigure"):  # a 核对 row's page: one stored, one 一致 (no row of its own)
        for title, pk in _figure_samples(user):
            pages.append((title, reverse("admin:settlement_benefitfigure_change", args=[pk])))
    return pages


def change_and_autocomplete_pages(user, sample):
    """The change page of a row of each big table the user reads, and the autocompletes a claim's page
    offers (a person by ID number and by surname, an institution by code, a disease)."""
    from contracts.models import Contract, InsuredPerson
    from settlement.models import InpatientCase, OutpatientClaim

    pages = []
    for model in (OutpatientClaim, InpatientCase, InsuredPerson, Contract):
        opts = model._meta
        if user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
            row = _first_visible(model, user)
            if row is not None:
                pages.append((f"{opts.verbose_name} 记录页面",
                              reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk])))
    if user.has_perm("settlement.view_outpatientclaim"):
        autocomplete = reverse("admin:autocomplete")
        for field, kind, term in (("person", "身份证号", sample["id_number"]), ("person", "姓氏", sample["surname"]),
                                  ("institution", "机构编码", sample["institution"]), ("disease", "病种", "")):
            query = urlencode({"app_label": "settlement", "model_name": "outpatientclaim", "field_name": field,
                               "term": term})
            pages.append((f"自动完成 {field} {kind}", f"{autocomplete}?{query}"))
    return pages


def _figure_samples(user):
    from alliances.scope import restrict
    from settlement.benefits.models import BenefitComputation, BenefitFigure, UnmatchedFigure
    from settlement.benefits.selectors import DIFFERS
    from settlement.models import OutpatientClaim

    samples = []
    stored = restrict(BenefitFigure.objects.filter(DIFFERS).order_by("-difference", "-id"), user).first()
    if stored is not None:
        samples.append(("核对 不一致记录页面", stored.pk))
    year = BenefitComputation.objects.order_by("-year").first()
    if year is not None:
        claims = restrict(OutpatientClaim.objects.filter(
            visit_date__gte=f"{year.year}-01-01", visit_date__lte=f"{year.year}-12-31", pk__lte=year.last_claim_id,
        ).order_by("-pk"), user).values_list("pk", flat=True)[:50]
        ids = [2 * pk for pk in claims]
        taken = set(UnmatchedFigure.objects.filter(pk__in=ids).values_list("pk", flat=True))
        matching = next((pk for pk in ids if pk not in taken), None)
        if matching is not None:
            samples.append(("核对 一致记录页面", matching))
    return samples


def _first_visible(model, user):
    from alliances.scope import restrict

    return restrict(model.objects.order_by("pk"), user).first()


def time_page(client, url, repeat):
    response = client.get(url)  # warm-up (and status check)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    return response.status_code, times


def linked_deep_page(client, title, url):
    """Page 500 as a clerk reaches it: the 下一页 link of page 499 (with the key it carries)."""
    if not re.search(r"[?&]p=500(&|$)", url):
        return []
    page = client.get(re.sub(r"([?&]p=)500", r"\g<1>499", url)).content.decode()
    link = re.search(r'<a href="([^"]+)">下一页</a>', page)
    if not link or "k=" not in link.group(1):
        return []
    return [(f"{title}（第499页的下一页链接）", url.split("?")[0] + html.unescape(link.group(1)))]


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--role", action="append", choices=ROLES, help="only these roles (repeatable)")
    parser.add_argument("--only", default="", help="only pages whose URL contains this text")
    parser.add_argument("--skip", action="append", default=[], help="leave out pages whose URL contains this text")
    args = parser.parse_args()
    setup_test_environment()
    sample = samples()
    worst = []
    for username in args.role or ROLES:
        user = get_user_model().objects.get(username=username)
        client = Client()
        client.force_login(user)
        print(f"\n== {username} ==")
        print(f"{'p50 ms':>8} {'p95 ms':>8}  status  page")
        for title, url in page_list(user, sample):
            if (args.only and args.only not in url) or any(text in url for text in args.skip):
                continue
            for title, url in [(title, url), *linked_deep_page(client, title, url)]:
                status, times = time_page(client, url, args.repeat)
                mid, high = statistics.median(times), p95(times)
                flag = "  ← over budget" if high > BUDGET_MS else ""
                print(f"{mid:8.0f} {high:8.0f}  {status:>6}  {title}  {url}{flag}")
                worst.append((high, username, title, url, status))
    worst.sort(reverse=True)
    print("\nworst pages (p95):")
    for high, username, title, url, status in worst[:10]:
        print(f"{high:8.0f} ms  {username:14} {status}  {title}  {url}")
    over = sum(1 for item in worst if item[0] > BUDGET_MS)
    print(f"\n{len(worst)} page×role timings, {over} over {BUDGET_MS} ms at p95")


if __name__ == "__main__":
    main()
