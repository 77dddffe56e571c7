"""Changelists over tables with millions of rows (claims, cases, services, persons, contracts).

What makes the stock admin slow there, and what replaces it:
- a COUNT(*) of the filtered rows on every page → `UncountedPaginator` reads only the page asked for
  and one row more, so a page says 第 N 页 and whether there is a next one, never a total; its
  下一页 link carries the last row's key, so a deep page is read after it, not past every row before;
- `date_hierarchy`, a DISTINCT over every date of the table → `PeriodFilter`, a year/month filter on
  the indexed date column whose choices come from the column's MIN and MAX (two index probes);
- one OR over several joined columns per search → `ShapeSearchMixin`: a search term picks the one
  indexed column its shape fits (an 18-character ID number, an institution code, a county code, a
  serial), or a name through a trigram index;
- sorting by any column → `sortable_by` names only the columns an index serves (set per admin).
"""
import datetime
import re

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Page, Paginator
from django.db.models import Max, Min, Q
from django.utils import timezone
from django.utils.functional import cached_property

from .scope import ScopedModel, scope_for


CURSOR_VAR = "k"  # the key of the last row of the page before: set by the 下一页 link


class UncountedPaginator(Paginator):
    """A paginator that knows the page it is asked for and never counts the whole result.

    `count` is the rows up to the end of this page, plus one when a later row exists: enough for the
    admin to draw 上一页/下一页 links up to the next page, and one LIMIT/OFFSET query in all.

    With `cursor` (the primary key of the last row of the page before, carried by the 下一页 link)
    and an order on one unique column, the page starts after that row (keyset): page 500 reads its
    51 rows from the index instead of skipping 24,950.
    """

    def __init__(self, object_list, per_page, number=1, cursor=None, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.requested = max(1, number)
        self.cursor = cursor

    @cached_property
    def keyset_column(self):
        """(column, descending) when the rows are in the order of one unique column; else None."""
        order = list(getattr(self.object_list, "query", None) and self.object_list.query.order_by or ())
        if len(order) != 1 or not isinstance(order[0], str):
            return None
        name, descending = order[0].lstrip("-"), order[0].startswith("-")
        opts = self.object_list.model._meta
        if name == "pk":
            return opts.pk.attname, descending
        try:
            field = opts.get_field(name)
        except Exception:
            return None
        if not field.concrete or field.is_relation or not (field.primary_key or field.unique) or field.null:
            return None
        return field.attname, descending

    def _after_cursor(self):
        """The rows after the cursor's row, or None when the page is read by its offset instead."""
        if self.cursor is None or self.requested == 1 or self.keyset_column is None:
            return None
        column, descending = self.keyset_column
        model = self.object_list.model
        if column == model._meta.pk.attname:
            value = self.cursor
        else:
            value = model._base_manager.filter(pk=self.cursor).values_list(column, flat=True).first()
            if value is None:  # the row is gone: its page by the offset
                return None
        return self.object_list.filter(**{f"{column}__{'lt' if descending else 'gt'}": value})

    @cached_property
    def _rows(self):
        # The page's keys first, from the index alone; then its rows with their joins. Deep pages
        # would otherwise join every row they skip.
        after = self._after_cursor()
        if after is not None:
            keys = list(after.values_list("pk", flat=True)[: self.per_page + 1])
        else:
            bottom = (self.requested - 1) * self.per_page
            keys = list(self.object_list.values_list("pk", flat=True)[bottom: bottom + self.per_page + 1])
        if not keys:
            return []
        rows = {row.pk: row for row in self.object_list.order_by().filter(pk__in=keys)}
        return [rows[key] for key in keys if key in rows]

    @cached_property
    def count(self):
        return (self.requested - 1) * self.per_page + len(self._rows)

    @property
    def has_more(self):
        return len(self._rows) > self.per_page

    @property
    def next_cursor(self):
        """The key the 下一页 link carries: the last row of this page, when the order allows a keyset."""
        if not self.has_more or self.keyset_column is None:
            return None
        return self._rows[self.per_page - 1].pk

    def page(self, number):
        number = self.validate_number(number)
        if number != self.requested:  # not the page this paginator was made for: plain slicing
            return super().page(number)
        return Page(self._rows[: self.per_page], number, self)


def requested_cursor(request):
    try:
        return int(request.GET.get(CURSOR_VAR, ""))
    except (TypeError, ValueError):
        return None


def requested_page(request):
    # The changelist pages by ?p=, the autocomplete endpoint by ?page=.
    try:
        return int(request.GET.get("p") or request.GET.get("page") or 1)
    except (TypeError, ValueError):
        return 1


class PeriodFilter(admin.SimpleListFilter):
    """Year, then month, on one date column; subclasses set `title`, `date_field`, `indexed`.

    The years offered run from the column's MIN to its MAX where an index leads with the column (two
    index probes); elsewhere they are this year and the five before it, with no query at all.
    """

    parameter_name = "period"
    date_field = ""
    indexed = False
    recent_years = 6
    bench_value = None  # bench/admin_bench.py times a typical choice when one is set

    def year_bounds(self, model_admin):
        if self.indexed:
            bounds = model_admin.model._default_manager.aggregate(first=Min(self.date_field), last=Max(self.date_field))
            if bounds["first"] is None:
                return None
            return bounds["first"].year, bounds["last"].year
        this_year = timezone.localdate().year
        return this_year - self.recent_years + 1, this_year

    def lookups(self, request, model_admin):
        bounds = self.year_bounds(model_admin)
        if bounds is None:
            return []
        first, last = bounds
        chosen_year = (self.span(self.value()) or (None,))[0]
        if chosen_year is not None:
            first, last = min(first, chosen_year.year), max(last, chosen_year.year)
        choices = [(str(year), f"{year}年") for year in range(last, first - 1, -1)]
        chosen = self.value() or ""
        if re.fullmatch(r"\d{4}(-\d{2})?", chosen):
            year = chosen[:4]
            at = next(i for i, (value, _) in enumerate(choices) if value == year) if year in dict(choices) else None
            if at is not None:
                months = [(f"{year}-{month:02d}", f"　{year}年{month}月") for month in range(1, 13)]
                choices[at + 1: at + 1] = months
        return choices

    def queryset(self, request, queryset):
        span = self.span(self.value())
        if span is None:
            return queryset
        first, last = span
        return queryset.filter(**{f"{self.date_field}__gte": first, f"{self.date_field}__lt": last})

    @staticmethod
    def span(value):
        match = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", value or "")
        if not match:
            return None
        year = int(match.group(1))
        if not 1900 <= year <= 2999:
            return None
        if match.group(2) is None:
            return datetime.date(year, 1, 1), datetime.date(year + 1, 1, 1)
        month = int(match.group(2))
        if not 1 <= month <= 12:
            return None
        first = datetime.date(year, month, 1)
        return first, (datetime.date(year + (month == 12), month % 12 + 1, 1))


def period_filter(field, title, indexed=False):
    """A PeriodFilter on `field`; `indexed` when an index leads with the column (MIN/MAX are cheap)."""
    return type(f"PeriodFilter_{field}", (PeriodFilter,), {"date_field": field, "title": title, "indexed": indexed})


ID_NUMBER = re.compile(r"^\d{17}[\dXx]$")
INSTITUTION_CODE = re.compile(r"^[Hh]\d{11}$")
DIVISION_CODE = re.compile(r"^\d{6}$")


class ShapeSearchMixin:
    """Search by the shape of the term: each shape has one indexed lookup (`search_shapes`).

    `search_shapes` maps a shape name — "id_number", "institution", "county", "name" — to the lookup
    that answers it; any other term is looked up with the lookups of `search_default`, ORed (e.g. an
    exact serial).
    """

    search_shapes: dict = {}
    search_default: tuple = ()
    # (foreign key, column) of a business key such as (institution, serial): any other term is looked
    # up as that column through the key's index, one probe per institution, instead of a scan.
    search_business_key: tuple | None = None
    search_help_text = "输入完整的身份证号、机构编码（H+11位）、区划代码（6位）或流水号"

    # Non-empty, so the admin draws the search box and autocompletes may point here; the searching
    # itself is get_search_results, which never reads these names.
    search_fields = ("__shape__",)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        shapes = self.search_shapes
        if ID_NUMBER.match(term) and "id_number" in shapes:
            return self._exact(request, queryset, shapes["id_number"], term.upper()), False
        if INSTITUTION_CODE.match(term) and "institution" in shapes:
            return self._exact(request, queryset, shapes["institution"], term.upper()), False
        if DIVISION_CODE.match(term) and "county" in shapes:
            return self._exact(request, queryset, shapes["county"], term), False
        if "name" in shapes and not re.search(r"\d", term):
            return queryset.filter(**{shapes["name"]: term}), False
        if self.search_business_key:
            relation, column = self.search_business_key
            related = self.model._meta.get_field(relation).related_model
            within = self._scope_through(scope_for(request.user), relation)
            keys = list(related._base_manager.filter(within or Q()).values_list("pk", flat=True))
            return queryset.filter(**{f"{relation}__in": keys, column: term}), False
        if self.search_default:
            match = Q()
            for lookup in self.search_default:
                match |= Q(**{lookup: term})
            return queryset.filter(match), False
        return queryset.none(), False

    RESOLVED_AT_MOST = 2_000

    def _exact(self, request, queryset, lookup, term):
        """An exact lookup across a relation (`person__id_number`) as a list of the related keys.

        The keys are read first (a unique or small index), so the planner sees literal values and
        takes the table's own index on the foreign key, instead of guessing at a join.
        """
        relation, _, rest = lookup.partition("__")
        field = self.model._meta.get_field(relation) if rest else None
        if field is None or not field.is_relation:
            return queryset.filter(**{lookup: term})
        related = field.related_model._base_manager.filter(**{rest: term})
        within = self._scope_through(scope_for(request.user), relation)
        if within is not None:
            # Only the related rows whose rows here the user may see: another county's or another
            # institution's code answers nothing at once. Left to the database, two disjoint key lists
            # make it walk the whole table looking for a first row (1.9 s for a county at city scale).
            related = related.filter(within)
        keys = list(related.values_list("pk", flat=True)[: self.RESOLVED_AT_MOST + 1])
        if len(keys) > self.RESOLVED_AT_MOST:
            return queryset.filter(**{lookup: term})
        if not keys:
            return queryset.none()
        return queryset.filter(**{f"{relation}__in": keys})

    def _scope_through(self, scope, relation):
        """The related rows of `relation` whose rows here `scope` sees, as a Q on the related model.

        Known only when this model's scope is the plain path (ScopedModel) and runs through
        `relation`; None otherwise (everything visible, or a scope of another shape: then the
        scope restriction on the queryset alone decides).
        """
        model = self.model
        if scope.sees_all or not isinstance(model, type) or not issubclass(model, ScopedModel):
            return None
        if model.scope_filter(scope) != ScopedModel.scope_filter.__func__(model, scope):
            return None  # a scope_filter of its own (e.g. a hospital's persons)
        if scope.is_regional:
            path, keys = model.scope_region, scope.region_ids
        elif scope.is_hospital:
            path, keys = model.scope_institution, scope.institution_ids
        else:
            return None
        if path == relation:
            return Q(pk__in=keys)
        if path and path.startswith(f"{relation}__"):
            return Q(**{f"{path[len(relation) + 2:]}__in": keys})
        return None


class UncountedChangeList(ChangeList):
    def get_query_string(self, new_params=None, remove=None):
        self.filter_params.pop(CURSOR_VAR, None)  # a filter, sort or facet link starts again at page 1
        return super().get_query_string(new_params, remove)

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(CURSOR_VAR, None)  # the paginator's, not a field lookup
        return lookup_params

    def get_results(self, request):
        super().get_results(request)
        # A single page is the rows the paginator has read already, not a second query for them.
        if isinstance(self.paginator, UncountedPaginator) and not self.show_all and self.paginator.requested == self.page_num:
            self.result_list = self.paginator._rows[: self.list_per_page]


class BigTableAdmin(ShapeSearchMixin):
    """Mixin for a ModelAdmin over a big table; put it before the admin base class."""

    change_list_template = "admin/portal/big_change_list.html"
    show_full_result_count = False
    date_hierarchy = None
    list_max_show_all = 0  # ?all= would read every row: never on these tables
    actions_selection_counter = False  # "select all N" would need the count this admin never takes

    def get_changelist(self, request, **kwargs):
        return UncountedChangeList

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        return UncountedPaginator(queryset, per_page, number=requested_page(request), cursor=requested_cursor(request),
                                  orphans=0, allow_empty_first_page=allow_empty_first_page)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            paginator = context["cl"].paginator
            context["portal_page_has_more"] = getattr(paginator, "has_more", False)
            context["portal_next_cursor"] = getattr(paginator, "next_cursor", None)
        return response

