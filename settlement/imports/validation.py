"""Row validation in chunks: parse cells, resolve codes with one query per chunk, apply the
resource's row rules, scope and in-file duplicates. Good rows go to a sink, bad rows to a report."""
from itertools import islice
from operator import itemgetter

from alliances.scope import EVERYTHING, Role, scope_for

from . import cells as cell_parsers
from .errors import CellError, ImportRejected, RowError
from .resources import Bad

CHUNK_ROWS = 10_000
OUT_OF_SCOPE = "不在您的数据范围内：医疗机构只能上传本机构（牵头医院可上传本医共体成员机构）的数据，县区只能上传本县区的数据"


class ImportContext:
    """What the row rules of one import may ask: lookups, the user's scope, in-file state."""

    def __init__(self, resource, user, lookups):
        self.resource = resource
        self.user = user
        self.user_id = user.pk if user is not None else None
        self.scope = scope_for(user) if user is not None else EVERYTHING
        self.lookups = lookups
        self.file_codes = set()
        self.in_file = {}
        self.existing = {}
        self.row_number = 0
        self.landed_at = None  # the history timestamp of the landing, set by imports.landing
        self.before_update = None  # (cursor, stored_rows_sql) before a staged chunk updates stored rows
        # Operators at the command line (no user) act as the bureau.
        self.may_verify = user is None or user.is_superuser or self.scope.role in (Role.CITY, Role.COUNTY, Role.HEALTH)
        self.own_institution_id = None
        self.hospital_county_ids = frozenset()
        if self.scope.is_hospital:
            from alliances.models import Institution, UserScope

            self.own_institution_id = UserScope.objects.get(user=user).institution_id
            self.hospital_county_ids = frozenset(
                Institution.objects.filter(pk__in=self.scope.institution_ids).values_list("county_id", flat=True)
            )

    def lookup(self, name):
        return self.lookups[name]

    def ref(self, name, header, code):
        found = self.lookups[name].get(code)
        if found is None:
            raise Bad(header, code, f"{header}“{code}”不存在，请先导入或核对编码")
        return found

    def require_institution(self, inst, header, code):
        scope = self.scope
        if scope.sees_all:
            return
        if scope.is_regional and inst[1] in scope.region_ids:
            return
        if scope.is_hospital and inst[0] in scope.institution_ids:
            return
        raise Bad(header, code, OUT_OF_SCOPE)

    def require_county(self, county_id, header, code):
        scope = self.scope
        if scope.sees_all or (scope.is_regional and county_id in scope.region_ids):
            return
        raise Bad(header, code, OUT_OF_SCOPE)

    def require_person_county(self, county_id, header, code):
        if self.scope.is_hospital and county_id in self.hospital_county_ids:
            return
        self.require_county(county_id, header, code)

    def require_unit(self, code, unit):
        scope = self.scope
        if scope.sees_all or code in scope.unit_codes:
            return
        if any(code.startswith(f"{region}-") for region in scope.region_codes):
            return
        raise Bad("单位编码", code, OUT_OF_SCOPE)


def bind_headers(resource, headers):
    """Map the resource's columns to positions in the file; order is free, extras are ignored."""
    positions = {}
    for index, header in enumerate(headers):
        if header in positions and header in resource.headers:
            raise ImportRejected(f"表头“{header}”出现了两次，请删除重复的列")
        positions.setdefault(header, index)
    missing = [header for header in resource.required_headers if header not in positions]
    if missing:
        raise ImportRejected(f"缺少必填列：{'、'.join(missing)}（请使用导入模板的表头）")
    return [(column, positions.get(column.header)) for column in resource.columns]


def validate(resource, table, ctx, accept, reject, progress=None):
    """Feed every data row to `accept(values, row_number)` or `reject(row_number, cells, errors)`."""
    bound = bind_headers(resource, table.headers)
    caches = {column.name: {} for column, _ in bound if column.cache}
    parse_row = compile_row_parser(_plan(bound, caches))
    lookup_columns = [(column.name, ctx.lookups[column.lookup]) for column, _ in bound if column.lookup]
    seen = {}
    business_key_of = itemgetter(*resource.key)  # a tuple, or the one value: either keys `seen` alike
    done = 0
    rows = iter(table.rows)
    while True:
        chunk = list(islice(rows, CHUNK_ROWS))
        if not chunk:
            break
        parsed = []
        bad = []  # reported in file order once the chunk is done
        for number, cells in chunk:
            row, problems = parse_row(number, cells)
            if problems:
                bad.append((number, cells, problems))
            else:
                parsed.append((number, cells, row))
        for name, lookup in lookup_columns:
            lookup.resolve({row[name] for _, _, row in parsed if row[name]})
        if resource.prefetch:
            resource.prefetch([row for _, _, row in parsed], ctx)
        for number, cells, row in parsed:
            ctx.row_number = number
            try:
                values = resource.finish(row, ctx)
            except Bad as problem:
                bad.append((number, cells, [RowError(number, problem.column, cell_parsers.shown(problem.value), problem.reason)]))
                continue
            business_key = business_key_of(values)
            first = seen.get(business_key)
            if first is not None:
                bad.append((number, cells, [RowError(number, "", "", f"与第{first}行重复（业务键相同），同一文件中只能出现一次")]))
                continue
            seen[business_key] = number
            accept(values, number)
        bad.sort(key=lambda item: item[0])
        for number, cells, problems in bad:
            reject(number, cells, problems)
        done += len(chunk)
        if progress:
            progress(done)
    return done


def _plan(bound, caches):
    absent = 1 << 30  # an optional column missing from the file: never < len(cells)
    return [
        (column.name, absent if index is None else index, column.required, column.parse, caches.get(column.name),
         column.header)
        for column, index in bound
    ]


def _parse_row(number, cells, plan):
    """The reference reading of one row: what `compile_row_parser` does, cell by cell."""
    row = {}
    problems = None
    for name, index, required, parse, cache, header in plan:
        raw = cells[index] if index < len(cells) else None
        row[name], problems = _cell(number, raw, problems, required, parse, cache, header)
    return row, problems


def _cell(number, raw, problems, required, parse, cache, header):
    """One cell, every case: blank, memoised value or error, parse, parse error."""
    if raw is None or raw == "" or (raw.__class__ is str and raw.isspace()):
        if required:
            problems = problems or []
            problems.append(RowError(number, header, "", "必填项不能为空"))
        return None, problems
    if cache is not None:
        # The type is part of the key: 1, 1.0 and True hash alike but parse differently.
        memo = raw if raw.__class__ is str else (raw.__class__, raw)
        hit = cache.get(memo)
        if hit is not None:
            if hit.__class__ is CellError:
                problems = problems or []
                problems.append(RowError(number, header, cell_parsers.shown(raw), hit.reason))
                return None, problems
            return hit, problems
    try:
        value = parse(raw)
    except CellError as exc:
        problems = problems or []
        problems.append(RowError(number, header, cell_parsers.shown(raw), exc.reason))
        if cache is not None and len(cache) < 50_000:
            cache[memo] = exc
        return None, problems
    if cache is not None and value is not None and len(cache) < 50_000:
        cache[memo] = value
    return value, problems


def compile_row_parser(plan):
    """One straight-line function per file layout for the hot loop (once per cell of a million rows).

    A loop over the plan costs a tuple unpack, an index check and several tests per cell; the
    generated function reads each cell by constant position and handles the common case inline
    (memo hit, or non-blank text parsed without error). Every other case goes to `_cell`, the
    same code `_parse_row` uses, so both readings agree by construction. The source is built only
    from positions and the specs' column names; parsers, caches and headers stay in the namespace.
    """
    width = max([index + 1 for _, index, *_ in plan if index < (1 << 30)] or [0])
    namespace = {"CellError": CellError, "_PAD": (None,) * width}
    lines = ["def parse_row(number, cells):", f"    if len(cells) < {width}:",
             "        cells = [*cells, *_PAD[len(cells):]]", "    problems = None"]
    names = []
    for k, (name, index, required, parse, cache, header) in enumerate(plan):
        names.append(name)
        namespace[f"slow{k}"] = (
            lambda number, raw, problems, _a=(required, parse, cache, header): _cell(number, raw, problems, *_a)
        )
        if index >= (1 << 30):
            lines.append(f"    v{k}, problems = slow{k}(number, None, problems)")
            continue
        lines.append(f"    raw = cells[{index}]")
        if cache is not None:
            namespace[f"cache{k}"] = cache
            lines += [
                f"    v{k} = cache{k}.get(raw) if raw.__class__ is str else None",
                f"    if v{k} is None or v{k}.__class__ is CellError:",
                # Blank cells are never memoised; an optional one is simply None.
                *([] if required else ['        if raw != "":']),
                f"        {'' if required else '    '}v{k}, problems = slow{k}(number, raw, problems)",
            ]
        else:
            namespace[f"parse{k}"] = parse
            lines += [
                "    if raw.__class__ is str and raw and not raw.isspace():",
                "        try:",
                f"            v{k} = parse{k}(raw)",
                "        except CellError:",
                f"            v{k}, problems = slow{k}(number, raw, problems)",
                *([] if required else ['    elif raw == "":', f"        v{k} = None"]),
                "    else:",
                f"        v{k}, problems = slow{k}(number, raw, problems)",
            ]
    # Column names are identifiers from the resource specs in this package, never file content.
    assert all(name.isidentifier() for name in names)
    lines.append("    return {" + "".join(f"{name!r}: v{k}, " for k, name in enumerate(names)) + "}, problems")
    exec("\n".join(lines), namespace)  # noqa: S102 - source made of positions and spec names only
    return namespace["parse_row"]
