"""The 核对 page's 全部 at city scale (issue #13): the `BenefitFigure` view says which branch a row
comes from (`stored`, a constant in each branch), so a query can name one branch and PostgreSQL drops
the others when it plans: 全部 is read as the stored rows, the matching claims and the matching cases,
each in the order of its own primary key, merged (settlement/benefits/paging.py)."""

from django.db import migrations, models

VIEW = """
CREATE OR REPLACE VIEW settlement_benefitfigure AS
SELECT u.id, u.year, u.care_type, u.claim_id, u.case_id, u.serial, u.institution_id, u.person_id, u.service_date,
  u.level, u.visit_type, u.in_scope, u.fund_paid, u.expected, u.difference, u.outcome, u.computed_at, TRUE AS stored
FROM settlement_unmatchedfigure u
UNION ALL
SELECT c.id * 2, y.year, '门诊', c.id, NULL::bigint, c.serial, c.institution_id, c.person_id, c.visit_date, i.level,
  c.visit_type, COALESCE(c.in_scope_cost, c.total_cost), c.fund_paid, NULL::numeric, NULL::numeric, '一致', y.computed_at,
  FALSE
FROM settlement_benefitcomputation y
JOIN settlement_outpatientclaim c ON c.visit_date BETWEEN make_date(y.year, 1, 1) AND make_date(y.year, 12, 31)
  AND c.id <= y.last_claim_id
JOIN alliances_institution i ON i.id = c.institution_id
WHERE NOT EXISTS (SELECT 1 FROM settlement_unmatchedfigure u WHERE u.id = c.id * 2)
UNION ALL
SELECT c.id * 2 + 1, y.year, '住院', NULL::bigint, c.id, c.serial, c.institution_id, c.person_id, c.discharge_date,
  i.level, '', COALESCE(c.in_scope_cost, c.total_cost), c.fund_paid, NULL::numeric, NULL::numeric, '一致', y.computed_at,
  FALSE
FROM settlement_benefitcomputation y
JOIN settlement_inpatientcase c ON c.discharge_date BETWEEN make_date(y.year, 1, 1) AND make_date(y.year, 12, 31)
  AND c.id <= y.last_case_id
JOIN alliances_institution i ON i.id = c.institution_id
WHERE NOT EXISTS (SELECT 1 FROM settlement_unmatchedfigure u WHERE u.id = c.id * 2 + 1)
"""


def _previous_view(apps, schema_editor):
    from importlib import import_module

    previous = import_module("settlement.migrations.0019_benefit_unmatched").VIEW
    schema_editor.execute("DROP VIEW IF EXISTS settlement_benefitfigure")
    schema_editor.execute(previous)


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
        migrations.RunSQL(VIEW, migrations.RunSQL.noop),
    ]
