"""Codes in a file resolved to database rows in batches: one query per chunk and column."""
from django.db import connection
from django.db.models import Q

MISSING = object()


class Lookup:
    """code → tuple of `values` for one model, cached across chunks up to `cache_limit` codes."""

    def __init__(self, model, field, values=("pk",), cache_limit=300_000):
        self.model = model
        self.field = field
        self.values = values
        self.cache = {}
        self.cache_limit = cache_limit

    def resolve(self, codes):
        wanted = [code for code in codes if code not in self.cache]
        if not wanted:
            return
        if len(self.cache) + len(wanted) > self.cache_limit:
            # High-cardinality columns (persons) would grow without bound over a million rows;
            # start afresh, but with every code of this chunk, cached or not.
            self.cache.clear()
            wanted = list(codes)
        found = {}
        for start in range(0, len(wanted), 20_000):
            part = wanted[start:start + 20_000]
            for row in self.query(part):
                found[row[0]] = row[1:]
        for code in wanted:
            self.cache[code] = found.get(code, MISSING)

    def query(self, codes):
        # One array parameter instead of an ORM `__in` list: building and quoting 20,000 bind
        # parameters cost more Python time than the query itself (the managers here do not filter).
        meta = self.model._meta
        quote = connection.ops.quote_name
        fields = [meta.pk if name == "pk" else meta.get_field(name) for name in (self.field, *self.values)]
        columns = ", ".join(quote(field.column) for field in fields)
        key = quote(meta.get_field(self.field).column)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {key} = ANY(%s)", [list(codes)])
            return cursor.fetchall()

    def get(self, code):
        value = self.cache.get(code, MISSING)
        return None if value is MISSING else value


class PackageLookup(Lookup):
    """服务包 by code or by name."""

    def query(self, codes):
        rows = self.model._default_manager.filter(Q(code__in=codes) | Q(name__in=codes)).values_list(
            "code", "name", "pk"
        )
        wanted = set(codes)
        for code, name, pk in rows:
            if code in wanted:
                yield code, pk
            if name in wanted:
                yield name, pk


class UnitLookup(Lookup):
    """单位编码: an alliance, an institution, or a DRG pool `<区划代码>-<等级段>` (SPEC §4)."""

    BANDS = ("二级及以上", "一级及基层")

    def __init__(self):
        super().__init__(None, "unit_code")

    def query(self, codes):
        from alliances.models import Alliance, Institution, Region

        yield from ((code, "alliance", county) for code, county in
                    Alliance.objects.filter(code__in=codes).values_list("code", "county_id"))
        yield from ((code, "institution", county) for code, county in
                    Institution.objects.filter(code__in=codes).values_list("code", "county_id"))
        pools = {}
        for code in codes:
            region, _, band = code.partition("-")
            if band in self.BANDS:
                pools.setdefault(region, []).append(code)
        if pools:
            for region_code, county in Region.objects.filter(code__in=list(pools)).values_list("code", "pk"):
                for code in pools[region_code]:
                    yield code, "pool", county
