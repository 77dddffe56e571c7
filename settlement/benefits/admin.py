"""Admin of the benefit engine (SPEC §6.8): tables with their FJ checks, rules, referrals, relocation
filings, and the 待遇测算核对 page (the 应付统筹 figures whose 统筹支付 differs), scoped like every page."""
import heapq
import itertools
import tempfile

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import connection, transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.sql.datastructures import BaseTable
from django.db.models.functions import ExtractYear
from django.contrib.admin.utils import unquote
from django.http import FileResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from alliances.big_tables import (INSTITUTION_CODE, BigTableAdmin, UncountedChangeList, UncountedPaginator, period_filter,
                                  requested_cursor, requested_page)
from alliances.models import Institution
from alliances.formatting import money_column
from alliances.scope import scope_for
from alliances.scoped_admin import ScopedAdmin
from settlement.approval import Refused, last_changed_by
from settlement.engine.admin_approval import confirmation, confirmed, row_item
from settlement.engine.services import SettlementError
from settlement.models import InpatientCase, OutpatientClaim, VisitType

from . import selectors, services
from .models import BenefitComputation, BenefitFigure, BenefitRule, BenefitTable, Outcome, Referral, Relocation
from .params import REVOKING_FILINGS

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _lines(lines):
    return format_html("<ol>{}</ol>", format_html_join("", "<li>{}</li>", ((line,) for line in lines)))


@admin.register(BenefitTable)
class BenefitTableAdmin(ScopedAdmin):
    list_display = ("year", "version", "status", "approved_by", "approved_at", "check_summary")
    list_filter = ("status",)
    readonly_fields = ("status", "version", "approved_by", "approved_at", "check_results")
    actions = ["approve_selected", "revise_selected", "compute_selected"]

    def get_readonly_fields(self, request, obj=None):
        # The year names the table: fixed once created.
        return (*self.readonly_fields, "year") if obj is not None else self.readonly_fields

    def _checks(self, obj):
        if obj is None or obj.year is None:
            return Refused("填写年度并保存后，按该年度的规则检查")
        try:
            return services.table_checks(obj.year)
        except SettlementError as exc:
            return exc

    @admin.display(description="政策符合性检查")
    def check_summary(self, obj):
        results = self._checks(obj)
        if isinstance(results, Exception):
            return str(results)
        broken = [r for r in results if not r.passed]
        return f"不符合{len(broken)}项：" + "、".join(r.clause for r in broken) if broken else f"全部{len(results)}项符合"

    @admin.display(description="政策符合性检查结果")
    def check_results(self, obj):
        results = self._checks(obj)
        if isinstance(results, Exception):
            return str(results)
        return format_html_join(
            "", "<p>{} {}：{}</p>", (("✔ 符合" if r.passed else "✘ 不符合", r.clause, r.detail) for r in results),
        )

    def _each(self, request, queryset, call, done):
        ok = 0
        for table in queryset.order_by("year"):
            try:
                call(table)
                ok += 1
            except Refused as exc:
                self.message_user(request, str(exc), messages.ERROR)
        if ok:
            self.message_user(request, done.format(ok))

    @admin.action(description="审批所选待遇政策表", permissions=["approve"])
    def approve_selected(self, request, queryset):
        # Four eyes (issue 18): a confirmation page with what is being locked; the second person is the service's rule.
        if not confirmed(request):
            items = []
            for table in queryset.order_by("year"):
                item = row_item(table, last_changed_by(BenefitTable, [table.pk]))
                item["lines"] += [("规则条数", BenefitRule.objects.filter(year=table.year).count()), ("政策符合性检查", self.check_summary(table))]
                items.append(item)
            return confirmation(self, request, "确认审批待遇政策表", items,
                                action="approve_selected", selected=queryset.values_list("pk", flat=True))
        self._each(request, queryset, lambda t: services.approve_table(t.year, request.user), "已审批{}张待遇政策表")

    @admin.action(description="为所选已审批待遇政策表建立新版本（修订草稿）", permissions=["approve"])
    def revise_selected(self, request, queryset):
        self._each(request, queryset, lambda t: services.revise_table(t.year, request.user),
                   "已为{}张待遇政策表建立新版本草稿；修改后请重新审批")

    @admin.action(description="按所选年度测算应付统筹（后台任务）", permissions=["approve"])
    def compute_selected(self, request, queryset):
        self._each(request, queryset, lambda t: services.start_compute(t.year, request.user),
                   "已提交{}个年度的应付统筹测算，进度见“后台任务”")


@admin.register(BenefitRule)
class BenefitRuleAdmin(ScopedAdmin):
    list_display = ("year", "insurance_type", "care_type", "level", "visit_type", "disease_prefix", "deductible_money",
                    "ratio", "annual_limit_money")
    deductible_money = money_column("deductible", "起付标准")
    annual_limit_money = money_column("annual_limit", "年度限额")
    list_filter = ("year", "insurance_type", "care_type", "level", "visit_type")
    search_fields = ("disease_prefix",)


@admin.register(Referral)
class ReferralAdmin(BigTableAdmin, ScopedAdmin):
    """A county's referrals are an OR over three owners (from, to, the person's county): never counted,
    no DISTINCT over dates (alliances/big_tables.py); listed newest first by the primary key."""

    list_display = ("number", "person", "from_institution", "to_institution", "referred_on", "direction")
    list_filter = (period_filter("referred_on", "转诊日期"), "direction")
    search_shapes = {"id_number": "person__id_number"}
    search_default = ("number",)
    search_help_text = "输入完整的身份证号、机构编码（H+11位，转出或转入）或转诊单号"
    autocomplete_fields = ("person", "from_institution", "to_institution")
    list_select_related = ("person", "from_institution", "to_institution")
    ordering = ("-pk",)
    sortable_by = ()

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if INSTITUTION_CODE.match(term):
            # Sent or received: the institution's key, then its two indexed columns.
            keys = list(Institution.objects.filter(code=term.upper()).values_list("pk", flat=True))
            return queryset.filter(Q(from_institution__in=keys) | Q(to_institution__in=keys)), False
        return super().get_search_results(request, queryset, search_term)


@admin.register(Relocation)
class RelocationAdmin(BigTableAdmin, ScopedAdmin):
    """A person's filings with, per filing, whether its year's relocation is revoked and why.

    Scoped through the person's county (a join to a million persons): never counted, no DISTINCT
    over dates; the year's count per filing is computed for the page's rows only."""

    list_display = ("person", "filed_on", "destination", "ended_on", "year_status")
    list_filter = (period_filter("filed_on", "备案日期"),)
    search_shapes = {"id_number": "person__id_number"}
    search_help_text = "输入完整的身份证号"
    autocomplete_fields = ("person",)
    list_select_related = ("person",)
    readonly_fields = ("year_detail",)
    ordering = ("-pk",)
    sortable_by = ()

    def get_queryset(self, request):
        same_year = (Relocation.objects.filter(person_id=OuterRef("person_id"), filed_on__year=OuterRef("filed_year"))
                     .values("person_id").annotate(n=Count("id")).values("n"))
        return super().get_queryset(request).annotate(
            filed_year=ExtractYear("filed_on"), filings_in_year=Subquery(same_year),
        )

    @admin.display(description="当年度异地安置待遇")
    def year_status(self, obj):
        if obj.filings_in_year and obj.filings_in_year >= REVOKING_FILINGS:
            return f"已取消（{obj.filed_on.year}年备案{obj.filings_in_year}次）"
        return "有效"

    @admin.display(description="当年度备案情况")
    def year_detail(self, obj):
        if obj.pk is None:
            return "—"
        status = selectors.relocation_year(obj.person_id, obj.filed_on.year)
        filings = "、".join(f"{f.filed_on}（安置地{f.destination}）" for f in status.filings)
        verdict = f"已取消：{status.reason}" if status.revoked else "未取消（当年度仅备案1次）"
        return f"{obj.filed_on.year}年备案：{filings}；{verdict}"


class DifferenceFilter(admin.SimpleListFilter):
    title = "核对结果"
    parameter_name = "differs"

    def lookups(self, request, model_admin):
        return [("yes", "统筹支付与应付统筹不一致"), ("all", "全部"), ("unruled", "没有适用规则")]

    def choices(self, changelist):
        # "不一致" is the page's default: the 核对 page lists what differs unless asked for everything.
        for value, label in self.lookup_choices:
            yield {
                "selected": (self.value() or "yes") == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        value = self.value() or "yes"
        if value == "yes":
            return queryset.filter(selectors.DIFFERS)
        if value == "unruled":
            return queryset.filter(outcome=Outcome.UNRULED)
        return queryset


class ComputedYearFilter(admin.SimpleListFilter):
    """The computed years, from BenefitComputation (one row a year), not a DISTINCT over the figures."""

    title = "年度"
    parameter_name = "year"

    def lookups(self, request, model_admin):
        years = BenefitComputation.objects.order_by("-year").values_list("year", flat=True)
        return [(str(year), f"{year}年") for year in years]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters("年度应为四位数字")
        return queryset.filter(year=int(value))


class VisitTypeFilter(admin.SimpleListFilter):
    """门诊类型 from its choices (住院 rows have none), not a DISTINCT over the figures."""

    title = "门诊类型"
    parameter_name = "visit_type"

    def lookups(self, request, model_admin):
        return VisitType.choices

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value not in VisitType.values:
            raise IncorrectLookupParameters("门诊类型无效")
        return queryset.filter(visit_type=value)


def _institutions(request, **attributes):
    """The ids of the institutions with these attributes among those whose rows the page reads.

    A filter on an institution's attribute (its county, its level) is planned through the join with a
    guess of the claims per institution from their number alone: for the city's few 三级 hospitals,
    which hold a tenth of its claims, a few thousand, and the page then sorted millions of claims
    (5–10 s); for a value none of the user's institutions has (the city itself, another county, a level)
    it walked the whole year for rows that are not there (3–12 s). A list of ids is estimated from the
    claims' own statistics, and an empty one answers without a query.
    """
    return list(_readable_institutions(request, **attributes).values_list("pk", flat=True))


def _readable_institutions(request, **attributes):
    """The institutions with these attributes among those whose rows the user's scope reads."""
    institutions = Institution.objects.filter(**attributes)
    seen = scope_for(request.user).institutions_seen
    return institutions if seen is None else institutions.filter(pk__in=seen)


FEW_INSTITUTIONS = 60  # a hospital's alliance (58 in the demo city), the city's 一级 hospitals (60)


def _few_institutions(request):
    """The ids of the institutions the 全部 list can hold when they are few (the user's scope, the 县区 and
    the 机构等级 filters), else None: their claims are then read institution by institution. Not under a
    search, which its own index serves."""
    if request.GET.get("q"):
        return None
    attributes = {}
    county, level = request.GET.get(f"{CountyFilter.FIELD}__id__exact"), request.GET.get("level__exact")
    if county:
        if not county.isdigit():
            return None  # the filter itself refuses it
        attributes["county_id"] = int(county)
    if level:
        attributes["level"] = level
    institutions = _readable_institutions(request, **attributes).order_by("pk")
    ids = list(institutions.values_list("pk", flat=True)[:FEW_INSTITUTIONS + 1])
    return ids if len(ids) <= FEW_INSTITUTIONS else None


class CountyFilter(admin.RelatedFieldListFilter):
    """县区 as the ids of its institutions (`_institutions`): a row's county is its institution's."""

    FIELD = "institution__county"

    def queryset(self, request, queryset):
        counties = self.used_parameters.get(self.lookup_kwarg)
        if not counties:
            return super().queryset(request, queryset)
        try:
            return queryset.filter(institution_id__in=_institutions(request, county__in=counties))
        except (ValueError, ValidationError) as exc:
            raise IncorrectLookupParameters(exc)


class LevelFilter(admin.ChoicesFieldListFilter):
    """机构等级: a stored row by the level it was computed with, a matching claim or case by its
    institution's, as the ids of the level's institutions (`_institutions`). Each branch of the view
    keeps only its own arm (`stored` is a constant in each)."""

    def queryset(self, request, queryset):
        levels = self.used_parameters.get(self.lookup_kwarg)
        if not levels:
            return super().queryset(request, queryset)
        return queryset.filter(Q(stored=True, level__in=levels)
                               | Q(stored=False, institution_id__in=_institutions(request, level__in=levels)))


def _lists_all(request):
    return request.GET.get(DifferenceFilter.parameter_name) == "all"


class AllFiguresPaginator(UncountedPaginator):
    """全部 of the 核对 page: every claim and case of the computed years, newest record first (view id).

    The view's rows come from three branches: the stored figures, the matching claims, the matching
    cases. PostgreSQL plans a UNION branch by branch, without the page's order: read through the view,
    全部 sorted the year's ten million rows (5–72 s at city scale). Here the page's query is read over
    each branch's own relation instead (a view of the stored table, and the two views of the matching
    rows, which a query flattens), in the order of its primary key — the view id is the stored row's id,
    2 × the claim's id, 2 × the case's id + 1: the same order — its first rows taken, and the three
    merged in one statement. 下一页 carries the last view id, so a deep page is read after it.
    """

    keyset_column = ("id", True)
    # (relation, its key, the key's bound for a view id K: K itself, ⌈K/2⌉, ⌊K/2⌋ — 2c < K ⇔ c < ⌈K/2⌉,
    # 2c + 1 < K ⇔ c < ⌊K/2⌋, and 2c ≥ K ⇔ c ≥ ⌈K/2⌉, 2c + 1 ≥ K ⇔ c ≥ ⌊K/2⌋). The claims first: the most rows.
    BRANCHES = (("settlement_benefitmatchingclaim", "claim_id", lambda k: (k + 1) // 2),
                ("settlement_benefitstoredfigure", "id", lambda k: k),
                ("settlement_benefitmatchingcase", "case_id", lambda k: k // 2))

    def __init__(self, object_list, per_page, institutions=None, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        # The few institutions the list can hold (the scope and the filters on the institution), or None.
        self.institutions = institutions

    def _branch(self, table, key, bound, below=None, from_=None, institution=None):
        """The page's own query (filters, search, scope) over one branch's relation, newest first:
        view ids below `below`, and from `from_` on; of one institution's rows only if named."""
        figures = self.object_list.order_by().values_list("id", flat=True)
        alias = figures.query.get_initial_alias()
        figures.query.alias_map[alias] = BaseTable(table, alias)
        if institution is not None:
            figures = figures.filter(institution_id=institution)
        if below is not None:
            figures = figures.filter(**{f"{key}__lt": bound(below)})
        if from_ is not None:
            figures = figures.filter(**{f"{key}__gte": bound(from_)})
        return figures.order_by(f"-{key}")

    # A typed deep page reads the claims in statements of this many keys at most, each after the last.
    # The view's year bounds come from a join, so the planner guesses them 14 times too narrow; asked
    # for 25,001 keys at once it then sorted a hospital's whole year (878 k claims, 3 s) rather than
    # walk the primary key (0.13 s). Asked for fewer, each statement's walk stays the cheaper plan.
    CHUNK = 2500

    def _newest(self, table, key, bound, below, count):
        """The branch's first `count` view ids below `below` (newest first), read chunk by chunk."""
        keys = []
        while len(keys) < count:
            wanted = min(self.CHUNK, count - len(keys))
            chunk = list(self._branch(table, key, bound, below)[:wanted])
            keys += chunk
            if len(chunk) < wanted:
                break
            below = chunk[-1]
        return keys

    def _by_institution(self, cursor, table, key, bound, below, count):
        """The claims' first `count` view ids below `below`, merged from each institution's own, newest first.

        For a few institutions of a county, a level or a hospital's alliance, the walk of the whole year
        in key order finds their claims only far down (a county's 一级 clinics: 1.8 s; page 500: 37 s).
        Each institution's claims are read backwards from its own index (claim_institution_newest), a
        short statement after the last key taken, the first as long as the institution's even share of
        the page and each next one longer, so a page reads about what it shows. Sorting is off for these
        statements only: the planner, taking the year's claims for few, would sort an institution's whole
        year instead. (A failed statement rolls the page's transaction back, and the setting with it.)
        """
        first = min(max(self.per_page + 1, count // max(len(self.institutions), 1) + 1), self.CHUNK)

        def newest(institution):
            last, size = below, first
            while True:
                chunk = list(self._branch(table, key, bound, last, institution=institution)[:size])
                yield from chunk
                if len(chunk) < size:
                    return
                last, size = chunk[-1], min(size * 4, self.CHUNK)

        cursor.execute("SET LOCAL enable_sort = off")
        keys = list(itertools.islice(heapq.merge(*map(newest, self.institutions), reverse=True), count))
        cursor.execute("SET LOCAL enable_sort = on")
        return keys

    @cached_property
    def _rows(self):
        after = self.cursor if self.requested > 1 else None
        skip = 0 if after is not None else (self.requested - 1) * self.per_page
        end = skip + self.per_page + 1
        (table, key, bound), *others = self.BRANCHES
        with transaction.atomic(), connection.cursor() as cursor:
            # A deep page's estimate passes jit_above_cost: compiling costs more than the index read.
            cursor.execute("SET LOCAL jit = off")
            if self.institutions is None:
                claims = self._newest(table, key, bound, after, end)
            else:
                claims = self._by_institution(cursor, table, key, bound, after, end)
            # The page's rows are the first `end` of the three merged: none is older than the claims'
            # `end`-th. A deep page reads the other branches down to it only (a year's cases, whose
            # view ids are all below the claims', are then not read at all).
            floor = claims[-1] if len(claims) == end else None
            # Each branch on its own (a union of an empty search's querysets cannot be ordered).
            keys = sorted(claims + [pk for table, key, bound in others
                                    for pk in self._branch(table, key, bound, after, floor)[:end]], reverse=True)[skip:end]
            if not keys:
                return []
            rows = {row.pk: row for row in self.object_list.order_by().filter(selectors.figure_keys(keys))}
        return [rows[key] for key in keys if key in rows]


class ReconcileChangeList(UncountedChangeList):
    def get_ordering(self, request, queryset):
        # 全部 is read in the view id's order only (AllFiguresPaginator): 差额 sorts 不一致 and 无适用规则.
        if _lists_all(request):
            return ["-pk"]
        return super().get_ordering(request, queryset)


@admin.register(BenefitFigure)
class BenefitFigureAdmin(BigTableAdmin, ScopedAdmin):
    """待遇测算核对: per year and region, the claims and cases whose 统筹支付 differs from 应付统筹.

    A view over ten million claims and cases (models.BenefitFigure): never counted; the filters'
    choices come from small tables; the default list (不一致) is read from UnmatchedFigure by its
    difference index; the totals per institution are the sums stored with the figures (UnmatchedTotal).
    """

    change_list_template = "admin/benefits/reconcile_change_list.html"
    list_display = ("serial", "care_type", "institution", "level", "visit_type", "service_date", "in_scope_money",
                    "fund_paid_money", "expected_money", "difference_money", "outcome")
    in_scope_money = money_column("in_scope", "政策范围内费用")
    fund_paid_money = money_column("fund_paid", "统筹支付")
    expected_money = money_column("expected", "应付统筹")
    difference_money = money_column("difference", "差额（统筹支付−应付统筹）")
    list_filter = (DifferenceFilter, ComputedYearFilter, (CountyFilter.FIELD, CountyFilter), "care_type",
                   ("level", LevelFilter), VisitTypeFilter)
    search_shapes = {"id_number": "person__id_number", "institution": "institution__code"}
    # A serial through the claims' and cases' (institution, serial) keys: under 全部 a plain serial
    # lookup would scan every claim of the year.
    search_business_key = ("institution", "serial")
    search_help_text = "输入完整的身份证号、机构编码（H+11位）或单据号"
    list_select_related = ("institution",)
    ordering = ("-difference",)
    sortable_by = ("difference_money",)  # served by the difference indexes of UnmatchedFigure
    fields = ("year", "care_type", "serial", "institution", "person", "service_date", "fund_paid", "expected",
              "difference", "outcome", "derivation", "computed_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def get_changelist(self, request, **kwargs):
        return ReconcileChangeList

    def get_sortable_by(self, request):
        return () if _lists_all(request) else super().get_sortable_by(request)

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        if not _lists_all(request):
            return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
        return AllFiguresPaginator(queryset, per_page, number=requested_page(request), cursor=requested_cursor(request),
                                   allow_empty_first_page=allow_empty_first_page, institutions=_few_institutions(request))

    def object_lookup(self, pk):
        # By the branch's own key (selectors.figure_keys): `id` alone is 2 × a claim's id in the view.
        return selectors.figure_keys([pk])

    def get_object(self, request, object_id, from_field=None):
        try:
            pk = int(unquote(object_id))
        except (TypeError, ValueError):
            return None
        return self.get_queryset(request).filter(self.object_lookup(pk)).first()

    @admin.display(description="测算过程")
    def derivation(self, obj):
        return _derivation_of(obj.claim if obj.claim_id else obj.case)

    def get_urls(self):
        return [
            path("export/", self.admin_site.admin_view(self.export_view), name="settlement_benefitfigure_export"),
            *super().get_urls(),
        ]

    def _filtered(self, request):
        return self.get_changelist_instance(request).get_queryset(request)

    @staticmethod
    def _totals(request, figures):
        """按机构汇总 of the filter: the stored sums when they hold it, else one grouped scan of the rows."""
        stored = selectors.stored_totals(request.GET.dict(), request.user)
        return stored if stored is not None else selectors.totals_by_institution(figures)

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        query = request.GET.urlencode()
        extra_context.update(
            title="待遇测算核对",
            # 一致 rows carry no 应付统筹 of their own (it is within 0.01 元 of 统筹支付): say what the sums cover.
            totals_note=("一致的记录（与统筹支付相差不超过0.01元）不单独保存应付统筹，也不计入按机构汇总："
                         "汇总的笔数、统筹支付、应付统筹与差额只合计不一致的记录；单笔的测算过程见该记录页面")
            if request.GET.get(DifferenceFilter.parameter_name) == "all" else "",
            reconcile_export_url=f"{reverse('admin:settlement_benefitfigure_export')}?{query}",
        )
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:  # the changelist's own filtered rows, not a second changelist
            context["institution_totals"] = self._totals(request, context["cl"].queryset)[:50]
        return response

    EXPORT_ROWS = 200_000  # a city year's differing rows (136 k) fit; 全部 must be narrowed first

    def export_view(self, request):
        from openpyxl import Workbook

        from settlement.engine.export import safe_text

        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            figures = self._filtered(request).select_related("institution", "person")
        except (IncorrectLookupParameters, ValidationError):
            self.message_user(request, "筛选条件无效，未导出；请重新设置筛选后再导出", messages.ERROR)
            return redirect(reverse("admin:settlement_benefitfigure_changelist"))
        # 全部 holds every claim of the year: ten million rows are no spreadsheet (nor one request's work).
        if figures.order_by().values("id")[:self.EXPORT_ROWS + 1].count() > self.EXPORT_ROWS:
            self.message_user(request, f"符合条件的记录超过{self.EXPORT_ROWS:,}条，未导出；“全部”含全年每一笔结算，"
                                       "请按县区、机构等级、门诊类型筛选或按机构编码、身份证号搜索缩小范围后再导出",
                              messages.ERROR)
            return redirect(f"{reverse('admin:settlement_benefitfigure_changelist')}?{request.GET.urlencode()}")
        book = Workbook(write_only=True)
        sheet = book.create_sheet("核对清单")
        sheet.append(["年度", "就医类型", "单据号", "机构编码", "机构名称", "机构等级", "门诊类型", "身份证号", "日期",
                      "政策范围内费用", "统筹支付", "应付统筹", "差额"])
        for f in figures.iterator(chunk_size=5000):
            sheet.append([f.year, f.care_type, safe_text(f.serial), f.institution.code, safe_text(f.institution.name),
                          f.level, f.visit_type, f.person.id_number, f.service_date, f.in_scope, f.fund_paid,
                          f.expected, f.difference])
        totals = book.create_sheet("机构汇总")
        totals.append(["机构编码", "机构名称", "笔数", "统筹支付", "应付统筹", "差额"])
        for row in self._totals(request, figures):
            totals.append([row["institution__code"], safe_text(row["institution__name"]), row["rows"], row["fund_paid"],
                           row["expected"], row["difference"]])
        spool = tempfile.SpooledTemporaryFile(max_size=20 * 1024 * 1024)
        book.save(spool)
        spool.seek(0)
        stamp = timezone.localtime().strftime("%Y%m%d%H%M%S")
        return FileResponse(spool, as_attachment=True, filename=f"benefit_reconcile_{stamp}.xlsx", content_type=XLSX)


# --- the claim's and the case's own pages show their 应付统筹 ------------------------------------


def _derivation_of(row):
    """The claim's or case's derivation, re-derived from its person-year (the computation's own SQL)."""
    try:
        figure = selectors.derivation(row)
    except SettlementError as exc:
        return f"无法推导：{exc}"
    if figure is None:
        return "尚未测算（待遇政策表审批后由市医保局发起测算）"
    return _lines(selectors.derivation_lines(figure))


@admin.display(description="应付统筹测算")
def benefit_derivation(obj):
    return _derivation_of(obj)


def _extend_claim_admins():
    """The claim and case pages of settlement/admin.py gain the derivation (a case names its joined stay)."""
    for model in (OutpatientClaim, InpatientCase):
        model_admin = admin.site._registry.get(model)
        if model_admin is not None and benefit_derivation not in model_admin.readonly_fields:
            model_admin.readonly_fields = (*model_admin.readonly_fields, benefit_derivation)


_extend_claim_admins()
