"""Two ways to land the generated rows: Django bulk_create and PostgreSQL COPY.

Neither writes django-simple-history rows for the transaction tables: bulk_create and COPY bypass
`save()`. That is acceptable for synthetic seed data; the master data is written with history.
"""
from decimal import Decimal

from django.core.management.color import no_style
from django.db import connection


class BulkWriter:
    """Model instances in batches through `bulk_create`."""

    def __init__(self, batch_size=2000):
        self.batch_size = batch_size

    def write(self, model, columns, rows):
        if not rows:
            return
        money = {
            n for n, name in enumerate(columns)
            if model._meta.get_field(name).get_internal_type() == "DecimalField"
        }
        objs = []
        for row in rows:
            values = [Decimal(v) if n in money else v for n, v in enumerate(row)]
            objs.append(model(**dict(zip(columns, values))))
        model.objects.bulk_create(objs, batch_size=self.batch_size)


class CopyWriter:
    """`COPY … FROM STDIN` through psycopg 3, one row at a time into the stream (PostgreSQL only)."""

    def write(self, model, columns, rows):
        if not rows:
            return
        quote = connection.ops.quote_name
        names = ", ".join(quote(model._meta.get_field(name).column) for name in columns)
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY {quote(model._meta.db_table)} ({names}) FROM STDIN") as copy:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)


def reset_sequences(models):
    """Rows were numbered by the generator: move the id sequences past them."""
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


def dangling_references(model, first_id):
    """Foreign keys of rows numbered from `first_id` that point nowhere (checked after a trigger-less COPY)."""
    quote = connection.ops.quote_name
    problems = []
    with connection.cursor() as cursor:
        for field in model._meta.concrete_fields:
            if not field.is_relation:
                continue
            target = field.related_model._meta
            sql = (
                f"SELECT count(*) FROM {quote(model._meta.db_table)} t "
                f"LEFT JOIN {quote(target.db_table)} r ON r.{quote(target.pk.column)} = t.{quote(field.column)} "
                f"WHERE t.{quote(model._meta.pk.column)} >= %s AND t.{quote(field.column)} IS NOT NULL "
                f"AND r.{quote(target.pk.column)} IS NULL"
            )
            cursor.execute(sql, [first_id])
            missing = cursor.fetchone()[0]
            if missing:
                problems.append(f"{model._meta.db_table}.{field.column}: {missing}")
    return problems


def analyze(models):
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def vacuum():
    """VACUUM (ANALYZE) the whole database after a bulk load, as one does after pg_restore: autovacuum
    may be off or far behind, and without the visibility map every index-only scan reads the heap too
    (the city's 19 M claims: 5 s). Outside any transaction, which VACUUM refuses."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
