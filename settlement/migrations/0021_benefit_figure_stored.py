"""The 核对 page's 全部 at city scale (issue #13). The `BenefitFigure` view is a UNION, which PostgreSQL
plans branch by branch without the page's order: 全部 sorted the year's ten million rows (5–72 s). The
two branches of the matching claims and cases become views of their own, which a query reads flattened,
in the order of their primary keys; the page merges them with the stored rows (settlement/benefits/
admin.py, AllFiguresPaginator). The view also says which branch a row comes from (`stored`, a constant
in each branch), so a row is fetched by its branch's own key (selectors.figure_keys)."""

from django.db import migrations, models

# The matching claims and cases of a computed year (up to the newest it saw): 一致, no figure of their own.
BRANCHES = """
CREATE VIEW settlement_benefitmatchingclaim AS
SELECT c.id * 2 AS id, y.year, '门诊'::varchar(2) AS care_type, c.id AS claim_id, NULL::bigint AS case_id, c.serial,
  c.institution_id, c.person_id, c.visit_date AS service_date, i.level, c.visit_type,
  COALESCE(c.in_scope_cost, c.total_cost) AS in_scope, c.fund_paid, NULL::numeric AS expected,
  NULL::numeric AS difference, '一致'::varchar(5) AS outcome, y.computed_at, FALSE AS stored
FROM settlement_benefitcomputation y
JOIN settlement_outpatientclaim c ON c.visit_date BETWEEN make_date(y.year, 1, 1) AND make_date(y.year, 12, 31)
  AND c.id <= y.last_claim_id
JOIN alliances_institution i ON i.id = c.institution_id
WHERE NOT EXISTS (SELECT 1 FROM settlement_unmatchedfigure u WHERE u.id = c.id * 2);

CREATE VIEW settlement_benefitmatchingcase AS
SELECT c.id * 2 + 1 AS id, y.year, '住院'::varchar(2) AS care_type, NULL::bigint AS claim_id, c.id AS case_id, c.serial,
  c.institution_id, c.person_id, c.discharge_date AS service_date, i.level, ''::varchar(4) AS visit_type,
  COALESCE(c.in_scope_cost, c.total_cost) AS in_scope, c.fund_paid, NULL::numeric AS expected,
  NULL::numeric AS difference, '一致'::varchar(5) AS outcome, y.computed_at, FALSE AS stored
FROM settlement_benefitcomputation y
JOIN settlement_inpatientcase c ON c.discharge_date BETWEEN make_date(y.year, 1, 1) AND make_date(y.year, 12, 31)
  AND c.id <= y.last_case_id
JOIN alliances_institution i ON i.id = c.institution_id
WHERE NOT EXISTS (SELECT 1 FROM settlement_unmatchedfigure u WHERE u.id = c.id * 2 + 1);
"""

# The figures a computation stored, then the matching claims and cases. ids: 2 × claim id, 2 × case id + 1.
VIEW = """
CREATE VIEW settlement_benefitfigure AS
SELECT u.id, u.year, u.care_type, u.claim_id, u.case_id, u.serial, u.institution_id, u.person_id, u.service_date,
  u.level, u.visit_type, u.in_scope, u.fund_paid, u.expected, u.difference, u.outcome, u.computed_at, TRUE AS stored
FROM settlement_unmatchedfigure u
UNION ALL
SELECT * FROM settlement_benefitmatchingclaim
UNION ALL
SELECT * FROM settlement_benefitmatchingcase
"""

DROP = "DROP VIEW IF EXISTS settlement_benefitfigure"
DROP_BRANCHES = "DROP VIEW IF EXISTS settlement_benefitmatchingclaim; DROP VIEW IF EXISTS settlement_benefitmatchingcase"


def _previous_view(apps, schema_editor):
    from importlib import import_module

    schema_editor.execute(DROP)
    schema_editor.execute(DROP_BRANCHES)
    schema_editor.execute(import_module("settlement.migrations.0019_benefit_unmatched").VIEW)


class Migration(migrations.Migration):

    dependencies = [
        ('settlement', '0020_benefit_reconcile'),
    ]

    operations = [
        migrations.AddField(
            model_name='benefitfigure',
            name='stored',
            field=models.BooleanField(default=False, editable=False, verbose_name='单独保存的测算'),
        ),
        migrations.RunPython(migrations.RunPython.noop, _previous_view),
        migrations.RunSQL([DROP, BRANCHES, VIEW], migrations.RunSQL.noop),
    ]
