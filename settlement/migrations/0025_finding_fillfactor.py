"""Findings pages half full (issue #15): every audit re-run rewrites each finding it finds again
(seen_at, its figures), none of the indexed columns. With room on the row's own page PostgreSQL
updates it in place (a HOT update, no new entry in any of the finding indexes), which halves the
upsert of a re-run (BEN01's 136,438 findings on the city copy: 3.3–3.6 s → 1.5–1.7 s). The room is
what each re-run's new row versions fill anyway: the table is not larger once it has been re-run."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("settlement", "0024_claim_institution_newest")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE settlement_finding SET (fillfactor = 50)",
            "ALTER TABLE settlement_finding RESET (fillfactor)",
        ),
    ]
