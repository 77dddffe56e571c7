"""Putting validated rows into the database, with matching django-simple-history rows.

PostgreSQL: rows are COPYed chunk by chunk into a session-private staging table while the file
is still being read; nothing touches the real tables until one final transaction upserts them
(INSERT … SELECT … ON CONFLICT … DO UPDATE … WHERE IS DISTINCT FROM … RETURNING) and writes one
history row per row actually created or changed. Other databases (the SQLite demo) land row by
row through the ORM, whose history signals write the same history rows.
"""
import queue
import threading
import uuid
from operator import itemgetter

from django.db import connection, transaction
from django.db.models import NOT_PROVIDED
from django.utils import timezone

CHANGE_REASON = "表格导入"


def _q(name):
    return connection.ops.quote_name(name)


def make_lander(resource, ctx):
    if connection.vendor == "postgresql" and not resource.orm_only:
        # A second connection sees only committed rows; inside a caller's transaction (a test, a
        # larger unit of work) the rows this file refers to may not be committed yet.
        if connection.in_atomic_block:
            return CopyLander(resource, ctx)
        return OverlappedCopyLander(resource, ctx)
    return OrmLander(resource, ctx)


def _insert_defaults(model, columns):
    """Model defaults for NOT NULL columns the file does not carry (Django keeps them in Python)."""
    defaults = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.column in columns:
            continue
        if field.default is not NOT_PROVIDED or not field.null:
            defaults[field.column] = field.get_default()
    return defaults


def _history_columns(model):
    history = model.history.model
    columns, values = [], []
    for field in history._meta.concrete_fields:
        if field.name == "history_id":
            continue
        columns.append(field.column)
        if field.name == "history_date":
            values.append("%(now)s")
        elif field.name == "history_change_reason":
            values.append("%(reason)s")
        elif field.name == "history_type":
            values.append("CASE WHEN up._created THEN '+' ELSE '~' END")
        elif field.name == "history_user":
            values.append("%(user)s")
        else:
            values.append(f"up.{_q(field.column)}")
    return history._meta.db_table, columns, values


def _history_params(ctx):
    return {"now": timezone.now(), "reason": CHANGE_REASON, "user": ctx.user_id}


def insert_with_history(cursor, model, select_sql, columns, ctx):
    """INSERT … SELECT new rows (conflicts skipped) and write their '+' history rows."""
    table = model._meta.db_table
    hist_table, hist_columns, hist_values = _history_columns(model)
    cursor.execute(
        f"WITH up AS (INSERT INTO {_q(table)} ({', '.join(map(_q, columns))}) {select_sql} "
        f"ON CONFLICT DO NOTHING RETURNING *, true AS _created) "
        f"INSERT INTO {_q(hist_table)} ({', '.join(map(_q, hist_columns))}) SELECT {', '.join(hist_values)} FROM up",
        _history_params(ctx),
    )


class CopyLander:
    def __init__(self, resource, ctx):
        self.resource = resource
        self.ctx = ctx
        self.model = resource.model
        self.stage = f"import_stage_{uuid.uuid4().hex[:12]}"
        self.columns = None
        self.pick = None
        self.buffer = []

    def add(self, values, number):
        if self.columns is None:
            self.columns = list(values)
            self.pick = itemgetter(*self.columns) if len(self.columns) > 1 else (lambda v: (v[self.columns[0]],))
            self._create_stage()
        self.buffer.append((*self.pick(values), number))
        if len(self.buffer) >= 10_000:
            self.flush()

    def _create_stage(self):
        target = [c for c in self.columns if c not in self.resource.stage_extra]
        extra = "".join(f", ADD COLUMN {_q(name)} {sql_type}" for name, sql_type in self.resource.stage_extra.items())
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE {self.stage} AS SELECT {', '.join(map(_q, target))} "
                f"FROM {_q(self.model._meta.db_table)} WITH NO DATA"
            )
            cursor.execute(f"ALTER TABLE {self.stage} ADD COLUMN _row integer{extra}")

    def flush(self):
        if not self.buffer:
            return
        self._copy(self.buffer)
        self.buffer = []

    def _copy(self, rows):
        names = ", ".join(map(_q, [*self.columns, "_row"]))
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {self.stage} ({names}) FROM STDIN") as copy:
                write = copy.write_row
                for row in rows:
                    write(row)

    def land(self):
        """Write everything staged in one transaction; returns (created, updated)."""
        self.flush()
        if self.columns is None:
            return 0, 0
        table = self.model._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            # Two imports into one table at once would race between the UPDATE and the INSERT.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"import:{table}"])
            _fast_commit(cursor)
            cursor.execute(f"ANALYZE {self.stage}")
            created, updated = self._upsert_stage(cursor)
        self.discard()
        return created, updated

    def _upsert_stage(self, cursor):
        if self.resource.pre_land:
            self.resource.pre_land(cursor, self.stage, self.ctx)
        updated = 0
        update = self._update_sql()
        if update:
            cursor.execute(*update)
            updated = cursor.rowcount
        cursor.execute(*self._insert_sql())
        return cursor.rowcount, updated

    def _target(self):
        return [c for c in self.columns if c not in self.resource.stage_extra]

    def _match(self):
        nullable = {f.column for f in self.model._meta.concrete_fields if f.null}
        return " AND ".join(
            f"t.{_q(c)} IS NOT DISTINCT FROM s.{_q(c)}" if c in nullable else f"t.{_q(c)} = s.{_q(c)}"
            for c in self.resource.key
        )

    def _with_history(self, statement, params):
        hist_table, hist_columns, hist_values = _history_columns(self.model)
        params.update(_history_params(self.ctx))
        return (
            f"WITH up AS ({statement}) INSERT INTO {_q(hist_table)} ({', '.join(map(_q, hist_columns))}) "
            f"SELECT {', '.join(hist_values)} FROM up",
            params,
        )

    def _update_sql(self):
        """Existing rows whose values really differ; unchanged rows get no write and no history."""
        resource = self.resource
        updatable = [c for c in self._target() if c not in resource.key and c not in resource.insert_only]
        if not updatable:
            return None

        def incoming(column):
            if column in resource.keep_if_null:
                return f"COALESCE(s.{_q(column)}, t.{_q(column)})"
            return f"s.{_q(column)}"

        params = {}
        sets = [f"{_q(c)} = {incoming(c)}" for c in updatable]
        for i, (column, value) in enumerate(resource.on_change.items()):
            sets.append(f"{_q(column)} = %(c{i})s")
            params[f"c{i}"] = value
        statement = (
            f"UPDATE {_q(self.model._meta.db_table)} t SET {', '.join(sets)} FROM {self.stage} s "
            f"WHERE {self._match()} AND ROW({', '.join(f't.{_q(c)}' for c in updatable)}) "
            f"IS DISTINCT FROM ROW({', '.join(incoming(c) for c in updatable)}) RETURNING t.*, false AS _created"
        )
        return self._with_history(statement, params)

    def _insert_sql(self):
        target = self._target()
        defaults = _insert_defaults(self.model, set(target))
        params = {f"d{i}": value for i, value in enumerate(defaults.values())}
        columns = target + list(defaults)
        select = [f"s.{_q(c)}" for c in target] + [f"%(d{i})s" for i in range(len(defaults))]
        table = _q(self.model._meta.db_table)
        statement = (
            f"INSERT INTO {table} ({', '.join(map(_q, columns))}) SELECT {', '.join(select)} FROM {self.stage} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {self._match()}) ORDER BY s._row "
            "RETURNING *, true AS _created"
        )
        return self._with_history(statement, params)

    def discard(self):
        if self.columns is None:
            return
        self.buffer = []
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.stage}")
        self.columns = None


def _fast_commit(cursor):
    """Do not wait for the WAL flush at COMMIT of this one import transaction.

    synchronous_commit only changes when COMMIT returns, not what commits: the transaction is
    still all or nothing, and a crash within the next ~0.6 s (3 × wal_writer_delay) can lose
    it only as a whole, as if it had never been committed. The import then reports success for a
    file the user can simply upload again (re-uploads change nothing). Other sessions keep their
    own setting.
    """
    cursor.execute("SET LOCAL synchronous_commit = off")


_COMMIT = object()
_ROLLBACK = object()


class _RolledBack(Exception):
    pass


class OverlappedCopyLander(CopyLander):
    """The same staging and upsert, chunk by chunk on a second connection inside one transaction,
    while this thread validates the next chunk: the database works while Python parses.

    Nothing is committed until `land()`; `discard()` (a bad row in an all-or-nothing import, a
    rejected file, any error) rolls the whole transaction back, so a failure still lands nothing.
    """

    def __init__(self, resource, ctx):
        super().__init__(resource, ctx)
        self.queue = queue.Queue(maxsize=2)  # bounds memory: at most two chunks in flight
        self.thread = None
        self.error = None
        self.created = self.updated = 0

    def add(self, values, number):
        if self.columns is None:
            self.columns = list(values)
            self.pick = itemgetter(*self.columns) if len(self.columns) > 1 else (lambda v: (v[self.columns[0]],))
        self.buffer.append((*self.pick(values), number))
        if len(self.buffer) >= 10_000:
            self.flush()

    def flush(self):
        if not self.buffer:
            return
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name="import-lander", daemon=True)
            self.thread.start()
        self.queue.put(self.buffer)
        self.buffer = []
        if self.error is not None:
            raise self.error

    def _work(self):
        from django.db import connections

        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"import:{self.model._meta.db_table}"])
                _fast_commit(cursor)
                # The foreign keys are DEFERRABLE INITIALLY DEFERRED (Django's default): left so,
                # a million rows queue two million key checks that all run at COMMIT, after the
                # file is read. Checked at the end of each chunk's statements instead, they run
                # while this thread's partner parses the next chunk. Same checks, same outcome: a
                # failure still aborts the one transaction and lands nothing.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                # Each chunk is 10,000 rows against a table of millions whose statistics do not
                # count the rows this transaction already wrote: without this the planner may
                # hash the whole table once per chunk. Index probes per staged row are the
                # right plan at every size here.
                cursor.execute("SET LOCAL enable_hashjoin = off")
                cursor.execute("SET LOCAL enable_mergejoin = off")
                self._create_stage()
                while True:
                    chunk = self.queue.get()
                    if chunk is _COMMIT:
                        break
                    if chunk is _ROLLBACK:
                        raise _RolledBack
                    self._copy(chunk)
                    created, updated = self._upsert_stage(cursor)
                    self.created += created
                    self.updated += updated
                    cursor.execute(f"TRUNCATE {self.stage}")
                cursor.execute(f"DROP TABLE {self.stage}")
        except _RolledBack:
            pass
        except BaseException as exc:  # handed to the validating thread at its next flush or at land()
            self.error = exc
            while self.queue.get() not in (_COMMIT, _ROLLBACK):
                pass
        finally:
            connections.close_all()

    def _finish(self, signal):
        if self.thread is None:
            return
        self.queue.put(signal)
        self.thread.join()
        self.thread = None

    def land(self):
        if self.columns is None:
            return 0, 0
        self.flush()
        self._finish(_COMMIT)
        if self.error is not None:
            raise self.error
        self.columns = None
        return self.created, self.updated

    def discard(self):
        self.buffer = []
        self._finish(_ROLLBACK)
        self.columns = None


class OrmLander:
    """Row by row through the ORM (SQLite demo, small self-referencing master data)."""

    def __init__(self, resource, ctx):
        self.resource = resource
        self.ctx = ctx
        self.rows = []

    def add(self, values, number):
        self.rows.append(values)

    def land(self):
        resource, model = self.resource, self.resource.model
        created = updated = 0
        with transaction.atomic():
            for values in self.rows:
                values = dict(values)
                if resource.orm_prepare:
                    resource.orm_prepare(values, self.ctx)
                key = {_attname(model, c): values[c] for c in resource.key}
                obj = model._default_manager.filter(**key).first()
                if obj is None:
                    obj = model(**{_attname(model, c): v for c, v in values.items()})
                    created += 1
                else:
                    changed = False
                    for column, value in values.items():
                        name = _attname(model, column)
                        if name in key or column in resource.insert_only:
                            continue
                        if value is None and column in resource.keep_if_null:
                            continue
                        if getattr(obj, name) != value:
                            setattr(obj, name, value)
                            changed = True
                    if not changed:
                        continue
                    for column, value in resource.on_change.items():
                        setattr(obj, _attname(model, column), value)
                    updated += 1
                obj._history_user = self.ctx.user
                obj._change_reason = CHANGE_REASON
                obj.save()
        self.rows = []
        return created, updated

    def discard(self):
        self.rows = []


def _attname(model, column):
    for field in model._meta.concrete_fields:
        if field.column == column:
            return field.attname
    return column
