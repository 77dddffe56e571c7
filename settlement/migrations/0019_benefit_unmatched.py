"""应付统筹 stored only where it differs (issue 14): the wide per-claim `BenefitFigure` table becomes
a view over the differing rows (`UnmatchedFigure`) and the year's other claims and cases, which match.

The previous figures are dropped: compute 应付统筹 again (按所选年度测算应付统筹) after migrating.
"""

import alliances.scope
import django.core.validators
import django.db.models.deletion
from decimal import Decimal
from django.db import migrations, models


# The figures a computation stored, then every other claim and case of a computed year (up to the
# newest it saw) as 一致 without a figure of its own. ids: 2 × claim id, 2 × case id + 1.
VIEW = """
CREATE VIEW settlement_benefitfigure AS
SELECT u.id, u.year, u.care_type, u.claim_id, u.case_id, u.serial, u.institution_id, u.person_id, u.service_date,
  u.level, u.visit_type, u.in_scope, u.fund_paid, u.expected, u.difference, u.outcome, u.computed_at
FROM settlement_unmatchedfigure u
UNION ALL
SELECT c.id * 2, y.year, '门诊', c.id, NULL::bigint, c.serial, c.institution_id, c.person_id, c.visit_date, i.level,
  c.visit_type, COALESCE(c.in_scope_cost, c.total_cost), c.fund_paid, NULL::numeric, NULL::numeric, '一致', y.computed_at
FROM settlement_benefitcomputation y
JOIN settlement_outpatientclaim c ON c.visit_date BETWEEN make_date(y.year, 1, 1) AND make_date(y.year, 12, 31)
  AND c.id <= y.last_claim_id
JOIN alliances_institution i ON i.id = c.institution_id
WHERE NOT EXISTS (SELECT 1 FROM settlement_unmatchedfigure u WHERE u.id = c.id * 2)
UNION ALL
SELECT c.id * 2 + 1, y.year, '住院', NULL::bigint, c.id, c.serial, c.institution_id, c.person_id, c.discharge_date,
  i.level, '', COALESCE(c.in_scope_cost, c.total_cost), c.fund_paid, NULL::numeric, NULL::numeric, '一致', y.computed_at
FROM settlement_benefitcomputation y
JOIN settlement_inpatientcase c ON c.discharge_date BETWEEN make_date(y.year, 1, 1) AND make_date(y.year, 12, 31)
  AND c.id <= y.last_case_id
JOIN alliances_institution i ON i.id = c.institution_id
WHERE NOT EXISTS (SELECT 1 FROM settlement_unmatchedfigure u WHERE u.id = c.id * 2 + 1)
"""

# The computation gathers a year's differing claims inside its parallel scan (settlement/benefits/
# arithmetic.py): each worker appends its own, the leader concatenates the workers' arrays.
COLLECT = """
CREATE TYPE benefit_claim_row AS (
  id bigint, serial varchar, institution_id bigint, person_id bigint, day date, level varchar, visit_type varchar,
  in_scope numeric, fund_paid numeric, amount_c bigint, unruled boolean
);
CREATE AGGREGATE benefit_collect(anycompatible) (
  SFUNC = array_append, STYPE = anycompatiblearray, COMBINEFUNC = array_cat, PARALLEL = SAFE
);
"""
UNCOLLECT = "DROP AGGREGATE IF EXISTS benefit_collect(anycompatible); DROP TYPE IF EXISTS benefit_claim_row;"


class Migration(migrations.Migration):

    dependencies = [
        ('alliances', '0005_export_records'),
        ('contracts', '0003_person_name_prefix'),
        ('settlement', '0018_finding_lean_indexes'),
    ]

    operations = [
        migrations.CreateModel(
            name='BenefitComputation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('year', models.PositiveSmallIntegerField(unique=True, verbose_name='年度')),
                ('computed_at', models.DateTimeField(verbose_name='计算时间')),
                ('claims', models.PositiveIntegerField(default=0, verbose_name='门诊笔数')),
                ('cases', models.PositiveIntegerField(default=0, verbose_name='住院例数')),
                ('differing', models.PositiveIntegerField(default=0, verbose_name='不一致笔数')),
                ('unruled', models.PositiveIntegerField(default=0, verbose_name='无适用规则笔数')),
                ('last_claim_id', models.BigIntegerField(default=0, verbose_name='最大门诊记录号')),
                ('last_case_id', models.BigIntegerField(default=0, verbose_name='最大住院病例号')),
            ],
            options={
                'verbose_name': '应付统筹测算记录',
                'verbose_name_plural': '应付统筹测算记录',
            },
        ),
        migrations.DeleteModel(name='BenefitFigure'),
        migrations.CreateModel(
            name='UnmatchedFigure',
            fields=[
                ('year', models.PositiveSmallIntegerField(verbose_name='年度')),
                ('care_type', models.CharField(choices=[('门诊', '门诊'), ('住院', '住院')], max_length=2, verbose_name='就医类型')),
                ('serial', models.CharField(max_length=40, verbose_name='单据号')),
                ('service_date', models.DateField(verbose_name='就诊/出院日期')),
                ('level', models.CharField(choices=[('三级', '三级'), ('二级', '二级'), ('一级', '一级'), ('基层', '基层')], max_length=4, verbose_name='机构等级')),
                ('visit_type', models.CharField(blank=True, max_length=4, verbose_name='门诊类型')),
                ('in_scope', models.DecimalField(decimal_places=2, max_digits=16, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='政策范围内费用')),
                ('fund_paid', models.DecimalField(decimal_places=2, max_digits=16, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='统筹支付')),
                ('expected', models.DecimalField(decimal_places=2, max_digits=16, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='应付统筹')),
                ('difference', models.DecimalField(decimal_places=2, max_digits=16, null=True, verbose_name='差额（统筹支付−应付统筹）')),
                ('outcome', models.CharField(choices=[('不一致', '不一致'), ('无适用规则', '无适用规则'), ('一致', '一致（相差不超过0.01元）')], max_length=5, verbose_name='核对结果')),
                ('computed_at', models.DateTimeField(verbose_name='计算时间')),
                ('id', models.BigIntegerField(primary_key=True, serialize=False)),
                ('case', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.CASCADE, db_index=False, related_name='+', to='settlement.inpatientcase', verbose_name='住院病例')),
                ('claim', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.CASCADE, db_index=False, related_name='+', to='settlement.outpatientclaim', verbose_name='门诊结算记录')),
                ('institution', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='alliances.institution', verbose_name='机构')),
                ('person', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='contracts.insuredperson', verbose_name='参保人')),
            ],
            options={
                'verbose_name': '应付统筹不一致记录',
                'verbose_name_plural': '应付统筹不一致记录',
                'indexes': [models.Index(condition=models.Q(('difference__gt', '0.01'), ('difference__lt', '-0.01'), _connector='OR'), fields=['year', 'difference'], name='benefit_unmatched_differs')],
            },
        ),
        migrations.CreateModel(
            name='BenefitFigure',
            fields=[
                ('year', models.PositiveSmallIntegerField(verbose_name='年度')),
                ('care_type', models.CharField(choices=[('门诊', '门诊'), ('住院', '住院')], max_length=2, verbose_name='就医类型')),
                ('serial', models.CharField(max_length=40, verbose_name='单据号')),
                ('service_date', models.DateField(verbose_name='就诊/出院日期')),
                ('level', models.CharField(choices=[('三级', '三级'), ('二级', '二级'), ('一级', '一级'), ('基层', '基层')], max_length=4, verbose_name='机构等级')),
                ('visit_type', models.CharField(blank=True, max_length=4, verbose_name='门诊类型')),
                ('in_scope', models.DecimalField(decimal_places=2, max_digits=16, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='政策范围内费用')),
                ('fund_paid', models.DecimalField(decimal_places=2, max_digits=16, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='统筹支付')),
                ('expected', models.DecimalField(decimal_places=2, max_digits=16, null=True, validators=[django.core.validators.MinValueValidator(Decimal('0'))], verbose_name='应付统筹')),
                ('difference', models.DecimalField(decimal_places=2, max_digits=16, null=True, verbose_name='差额（统筹支付−应付统筹）')),
                ('outcome', models.CharField(choices=[('不一致', '不一致'), ('无适用规则', '无适用规则'), ('一致', '一致（相差不超过0.01元）')], max_length=5, verbose_name='核对结果')),
                ('computed_at', models.DateTimeField(verbose_name='计算时间')),
                ('id', models.BigIntegerField(primary_key=True, serialize=False)),
                ('case', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='benefit_figures', to='settlement.inpatientcase', verbose_name='住院病例')),
                ('claim', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='benefit_figures', to='settlement.outpatientclaim', verbose_name='门诊结算记录')),
                ('institution', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='alliances.institution', verbose_name='机构')),
                ('person', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='contracts.insuredperson', verbose_name='参保人')),
            ],
            options={
                'verbose_name': '应付统筹测算',
                'verbose_name_plural': '应付统筹测算',
                'db_table': 'settlement_benefitfigure',
                'managed': False,
            },
            bases=(alliances.scope.ScopedModel, models.Model),
        ),
        migrations.RunSQL(VIEW, 'DROP VIEW IF EXISTS settlement_benefitfigure'),
        migrations.RunSQL(COLLECT, UNCOLLECT),
    ]
