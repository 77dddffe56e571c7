"""The 核对 page's stored branch as a relation with the view's columns (its `stored` is TRUE).

The page's 全部 reads each branch of settlement_benefitfigure on its own relation (benefits.admin.
AllFiguresPaginator); a filter naming `stored` (the 机构等级 filter: the stored rows by their own level, the
matching ones by their institution's) must resolve on each of them. A plain view: the planner reads the
table through it, by its indexes.
"""
from django.db import migrations

VIEW = """
CREATE VIEW settlement_benefitstoredfigure AS
SELECT u.id, u.year, u.care_type, u.claim_id, u.case_id, u.serial, u.institution_id, u.person_id, u.service_date,
  u.level, u.visit_type, u.in_scope, u.fund_paid, u.expected, u.difference, u.outcome, u.computed_at, TRUE AS stored
FROM settlement_unmatchedfigure u
"""


class Migration(migrations.Migration):

    dependencies = [
        ('settlement', '0022_recovery_item_shares'),
    ]

    operations = [
        migrations.RunSQL(VIEW, "DROP VIEW IF EXISTS settlement_benefitstoredfigure"),
    ]
