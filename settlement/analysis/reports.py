"""The institution table of a year as rows for export, scoped: the one path behind drg_report and the page."""
from alliances.models import Institution
from alliances.scope import restrict

from . import aggregates, drg
from .export import row_values

POOL_AVERAGE = "统筹池平均"


def institution_rows(year, region_code=None, user=None, pool_code=None, with_pools=False, the_basis=None):
    """[(code, name, Indices)] per institution with DRG cases of the year, ordered by code; with
    `user`, only the institutions the user may see. `with_pools` appends each pool's row (the pool as
    one unit, named 统筹池平均) after its institutions. The page's export (no region) reads the
    pre-aggregates when fresh; drg_report, a batch job, always computes live."""
    institutions = Institution.objects.all()
    if user is not None:
        institutions = restrict(institutions, user)
    known = {pk: (code, name) for pk, code, name in institutions.values_list("pk", "code", "name")}
    sets = ("institution", "pool") if with_pools else ("institution",)
    if the_basis is not None and region_code is None:
        items, _ = aggregates.read_indices(year, sets, pool_code=pool_code, the_basis=the_basis)
    else:
        items = drg.indices(year, sets, pool_code=pool_code, region_code=region_code)
    rows = sorted(
        ((*known[i.institution_id], i) for i in items if i.level == "institution" and i.institution_id in known),
        key=lambda row: (row[2].pool_code or "", row[0]),
    )
    if not with_pools:
        return sorted(rows, key=lambda row: row[0])
    visible_pools = {row[2].pool_code for row in rows}
    out = []
    for pool in sorted(visible_pools):
        out += [row for row in rows if row[2].pool_code == pool]
        out += [(pool, POOL_AVERAGE, i) for i in items if i.level == "pool" and i.pool_code == pool]
    return out


def export_rows(rows):
    return [row_values(code, name, item) for code, name, item in rows]
