"""Putting validated rows into the database, with matching django-simple-history rows.

PostgreSQL: the validating thread turns every chunk of good rows into COPY text, each row already
carrying an id taken from the table's sequence. The chunks land in one transaction, so a failure
anywhere lands nothing: on a second connection while the file is still being read, or at the end
inside a caller's transaction. A chunk lands one of two ways:

* new business keys (a first upload, next month's claims) are COPYed straight into the table and
  their '+' history rows are copied from the rows just written, found by id;
* a chunk that meets a key already stored is rolled back to its savepoint and goes through a
  session-private staging table: INSERT … WHERE NOT EXISTS for its new keys, UPDATE … WHERE IS
  DISTINCT FROM for its changed rows, each with its history rows ('+', '~'); unchanged rows get
  neither. Both ways write the same rows and the same history.

Resources marked `orm_only` (small self-referencing master data) land row by row through the ORM,
whose history signals write the same history rows.
"""
import io
import queue
import tempfile
import threading
import uuid
from dataclasses import dataclass
from operator import itemgetter

from django.db import connection, transaction
from django.db.models import NOT_PROVIDED, UniqueConstraint
from django.utils import timezone

CHANGE_REASON = "表格导入"
CHUNK_ROWS = 10_000
# Rows COPYed under one savepoint. A transaction with more than 64 subtransactions overflows
# PostgreSQL's per-backend cache of them, and every other session's snapshot then has to look its
# rows up in pg_subtrans while the import runs. Groups of up to 100,000 rows keep a 2,000,000-row
# file at 20, and bound what a group that meets a stored key has to land again the staging way.
GROUP_ROWS = 100_000


def _q(name):
    return connection.ops.quote_name(name)


def make_lander(resource, ctx, before_commit=None):
    """`before_commit(cursor)` runs last inside the landing transaction; raising there lands nothing."""
    if not resource.orm_only:
        # A second connection sees only committed rows; inside a caller's transaction (a test, a
        # larger unit of work) the rows this file refers to may not be committed yet.
        if connection.in_atomic_block:
            return CopyLander(resource, ctx, before_commit)
        return OverlappedCopyLander(resource, ctx, before_commit)
    return OrmLander(resource, ctx, before_commit)


def _insert_defaults(model, columns):
    """Model defaults for NOT NULL columns the file does not carry (Django keeps them in Python)."""
    defaults = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.column in columns:
            continue
        if field.default is not NOT_PROVIDED or not field.null:
            defaults[field.column] = field.get_default()
    return defaults


def _history_columns(model, history_type):
    """History columns and the SELECT expressions over `up` (the rows written) that fill them."""
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
            values.append(f"'{history_type}'")
        elif field.name == "history_user":
            values.append("%(user)s")
        else:
            values.append(f"up.{_q(field.column)}")
    return history._meta.db_table, columns, values


def _history_params(ctx):
    return {"now": timezone.now(), "reason": CHANGE_REASON, "user": ctx.user_id}


def _with_history(model, statement, history_type):
    """`statement` (… RETURNING *) followed by one history row per row it returns."""
    hist_table, hist_columns, hist_values = _history_columns(model, history_type)
    return (
        f"WITH up AS ({statement}) INSERT INTO {_q(hist_table)} ({', '.join(map(_q, hist_columns))}) "
        f"SELECT {', '.join(hist_values)} FROM up"
    )


def insert_with_history(cursor, model, select_sql, columns, ctx):
    """INSERT … SELECT new rows (conflicts skipped) and write their '+' history rows."""
    table = model._meta.db_table
    statement = f"INSERT INTO {_q(table)} ({', '.join(map(_q, columns))}) {select_sql} ON CONFLICT DO NOTHING RETURNING *"
    cursor.execute(_with_history(model, statement, "+"), _history_params(ctx))


def _copy(cursor, statement, data):
    with cursor.cursor.copy(statement) as copy:
        copy.write(memoryview(data))


def _direct_allowed(resource):
    """Whether a new key may be COPYed straight in: the database itself must refuse a key that is
    stored already (a unique constraint on exactly the business key, no NULLs in it), and the rows
    must need nothing from a staging table (teams created on the way)."""
    if resource.stage_extra or resource.pre_land:
        return False
    meta = resource.model._meta
    by_column = {field.column: field for field in meta.concrete_fields}
    if any(by_column[column].null for column in resource.key):
        return False

    def columns(names):
        return frozenset(meta.get_field(name).column for name in names)

    unique = [frozenset({field.column}) for field in meta.concrete_fields if field.unique and not field.primary_key]
    unique += [columns(names) for names in meta.unique_together]
    unique += [
        columns(constraint.fields) for constraint in meta.constraints
        if isinstance(constraint, UniqueConstraint) and constraint.fields and constraint.condition is None
        and constraint.deferrable is None
    ]
    return frozenset(resource.key) in unique


@dataclass
class Chunk:
    ids: str  # the rows' ids as a PostgreSQL array literal, e.g. "{101,102,103}"
    rows: int
    data: bytes  # COPY text, one line per row: id, then the plan's columns


class _Plan:
    """What one import writes and the SQL that writes it, fixed by the columns of its first good row."""

    def __init__(self, resource, ctx, columns):
        model = resource.model
        self.resource, self.ctx, self.model = resource, ctx, model
        self.table = model._meta.db_table
        self.pk = model._meta.pk.column
        self.pk_type = model._meta.pk.db_type(connection)
        self.pick = itemgetter(*columns) if len(columns) > 1 else (lambda values: (values[columns[0]],))
        self.target = [column for column in columns if column not in resource.stage_extra]
        defaults = _insert_defaults(model, set(self.target))
        self.default_values = tuple(defaults.values())
        # The order of the COPY text; the staging table has the same columns.
        self.copy_columns = [self.pk, *columns, *defaults]
        self.written = [self.pk, *self.target, *defaults]  # what reaches the real table
        self.direct = _direct_allowed(resource)
        self.sequence = None

    # --- in the validating thread ---------------------------------------------------------

    def format(self, rows):
        """COPY text for `rows` (tuples in the plan's column order), with fresh ids from the sequence."""
        from psycopg.copy import Copy, FileWriter

        with connection.cursor() as cursor:
            if self.sequence is None:
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [self.table, self.pk])
                self.sequence = cursor.fetchone()[0]
            # Taken once per chunk; ids of rows that never land (a file with a bad row) are
            # simply gaps, as after any rolled-back insert.
            cursor.execute(
                "SELECT array_agg(nextval(%s::regclass))::text FROM generate_series(1, %s)", [self.sequence, len(rows)]
            )
            ids = cursor.fetchone()[0]
            out = io.BytesIO()
            # psycopg's own COPY formatting, written to memory (the cursor only lends its adapters):
            # the landing thread then just sends bytes and barely needs the GIL.
            with cursor.cursor.connection.cursor() as adapters, \
                    Copy(adapters, binary=False, writer=FileWriter(out)) as copy:
                write, defaults = copy.write_row, self.default_values
                for row_id, row in zip(ids[1:-1].split(","), rows):
                    write((row_id, *row, *defaults))
        return Chunk(ids, len(rows), out.getvalue())

    # --- on the landing connection --------------------------------------------------------

    def copy_sql(self, table):
        return f"COPY {table} ({', '.join(map(_q, self.copy_columns))}) FROM STDIN"

    def history_of_new_sql(self):
        hist_table, hist_columns, hist_values = _history_columns(self.model, "+")
        return (
            f"INSERT INTO {_q(hist_table)} ({', '.join(map(_q, hist_columns))}) SELECT {', '.join(hist_values)} "
            f"FROM {_q(self.table)} up WHERE up.{_q(self.pk)} = ANY(%(ids)s::{self.pk_type}[])"
        )

    def create_stage_sql(self, stage):
        extra = "".join(f", ADD COLUMN {_q(name)} {sql_type}" for name, sql_type in self.resource.stage_extra.items())
        statements = [
            f"CREATE TEMP TABLE {stage} AS SELECT {', '.join(map(_q, self.written))} "
            f"FROM {_q(self.table)} WITH NO DATA"
        ]
        if extra:
            statements.append(f"ALTER TABLE {stage} {extra[2:]}")
        return statements

    def _match(self):
        nullable = {f.column for f in self.model._meta.concrete_fields if f.null}
        return " AND ".join(
            f"t.{_q(c)} IS NOT DISTINCT FROM s.{_q(c)}" if c in nullable else f"t.{_q(c)} = s.{_q(c)}"
            for c in self.resource.key
        )

    def stored_matches_sql(self, stage):
        """The stored rows a staged chunk changes (before it changes them), as `SELECT t.* …`: the
        rows update_sql writes; a stored row uploaded again unchanged is not among them."""
        differs = self._differs()
        changed = f" AND {differs}" if differs else ""
        return f"SELECT t.* FROM {_q(self.table)} t JOIN {stage} s ON {self._match()}{changed}"

    def insert_sql(self, stage):
        """Staged rows whose key is not stored yet, with their '+' history rows."""
        table = _q(self.table)
        statement = (
            f"INSERT INTO {table} ({', '.join(map(_q, self.written))}) "
            f"SELECT {', '.join(f's.{_q(c)}' for c in self.written)} FROM {stage} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {self._match()}) RETURNING *"
        )
        return _with_history(self.model, statement, "+"), {}

    @property
    def _updatable(self):
        resource = self.resource
        return [c for c in self.target if c not in resource.key and c not in resource.insert_only]

    def _incoming(self, column):
        if column in self.resource.keep_if_null:
            return f"COALESCE(s.{_q(column)}, t.{_q(column)})"
        return f"s.{_q(column)}"

    def _differs(self):
        """The condition on a matched pair (t stored, s staged) that the upload changes the row."""
        updatable = self._updatable
        if not updatable:
            return None
        return (f"ROW({', '.join(f't.{_q(c)}' for c in updatable)}) "
                f"IS DISTINCT FROM ROW({', '.join(self._incoming(c) for c in updatable)})")

    def update_sql(self, stage):
        """Stored rows whose values really differ, with their '~' history rows; unchanged rows get
        no write and no history."""
        resource = self.resource
        updatable = self._updatable
        if not updatable:
            return None
        incoming = self._incoming
        params = {}
        sets = [f"{_q(c)} = {incoming(c)}" for c in updatable]
        for i, (column, value) in enumerate(resource.on_change.items()):
            sets.append(f"{_q(column)} = %(c{i})s")
            params[f"c{i}"] = value
        statement = (
            f"UPDATE {_q(self.table)} t SET {', '.join(sets)} FROM {stage} s "
            f"WHERE {self._match()} AND {self._differs()} RETURNING t.*"
        )
        return _with_history(self.model, statement, "~"), params


class _Landing:
    """Lands chunks, in file order, on one connection inside its open transaction."""

    def __init__(self, plan, cursor):
        from psycopg.errors import UniqueViolation

        self.plan, self.cursor = plan, cursor
        self.key_exists = UniqueViolation
        self.params = _history_params(plan.ctx)
        # Every history row of this landing carries this timestamp: what `before_commit` hooks use
        # to find the rows the import wrote (settlement.kpi_aggregates.services.KpiDelta.add_landed).
        plan.ctx.landed_at = self.params["now"]
        self.direct = plan.direct
        self.savepoint = None
        self.group = []  # chunks COPYed under the open savepoint, kept to land again if it is undone
        self.stage = None
        self.created = self.updated = 0

    def land(self, chunk):
        if not (self.direct and self._copy_new(chunk)):
            self._upsert(chunk)

    def finish(self):
        self._close_group()
        if self.stage is not None:
            self.cursor.execute(f"DROP TABLE {self.stage}")
            self.stage = None

    def _copy_new(self, chunk):
        if self.savepoint is None:
            self.savepoint = transaction.savepoint()
        try:
            _copy(self.cursor, self.plan.copy_sql(_q(self.plan.table)), chunk.data)
        except self.key_exists:
            # Some key of the group is stored already: undo the group and land it the staging way.
            transaction.savepoint_rollback(self.savepoint)
            transaction.savepoint_commit(self.savepoint)  # released, as Django's atomic() does
            self.savepoint = None
            group, self.group = self.group, []
            for earlier in group:
                self._upsert(earlier)
            return False
        self.cursor.execute(self.plan.history_of_new_sql(), {**self.params, "ids": chunk.ids})
        self.group.append(chunk)
        if sum(earlier.rows for earlier in self.group) >= GROUP_ROWS:
            self._close_group()
        return True

    def _close_group(self):
        if self.savepoint is not None:
            transaction.savepoint_commit(self.savepoint)
            self.savepoint = None
        self.created += sum(chunk.rows for chunk in self.group)
        self.group = []

    def _upsert(self, chunk):
        plan, cursor = self.plan, self.cursor
        if self.stage is None:
            self.stage = f"import_stage_{uuid.uuid4().hex[:12]}"
            for statement in plan.create_stage_sql(self.stage):
                cursor.execute(statement)
        _copy(cursor, plan.copy_sql(self.stage), chunk.data)
        if plan.resource.pre_land:
            plan.resource.pre_land(cursor, self.stage, plan.ctx)
        if plan.ctx.before_update is not None:
            # What the rows looked like before this chunk changes them (the KPI aggregates refresh
            # the months rows leave as well as those they arrive in).
            plan.ctx.before_update(cursor, plan.stored_matches_sql(self.stage))
        statement, params = plan.insert_sql(self.stage)
        cursor.execute(statement, {**self.params, **params})
        created = cursor.rowcount
        update = plan.update_sql(self.stage) if created < chunk.rows else None
        if update:
            statement, params = update
            cursor.execute(statement, {**self.params, **params})
            self.updated += cursor.rowcount
        cursor.execute(f"TRUNCATE {self.stage}")
        self.created += created
        # A chunk with no stored key suggests the rest of the file is new as well.
        self.direct = plan.direct and created == chunk.rows


def _lock_table(cursor, model):
    # Two imports into one table at once would race between the UPDATE and the INSERT.
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"import:{model._meta.db_table}"])


def _fast_commit(cursor):
    """Do not wait for the WAL flush at COMMIT of this one import transaction.

    synchronous_commit only changes when COMMIT returns, not what commits: the transaction is
    still all or nothing, and a crash within the next ~0.6 s (3 × wal_writer_delay) can lose
    it only as a whole, as if it had never been committed. The import then reports success for a
    file the user can simply upload again (re-uploads change nothing). Other sessions keep their
    own setting.
    """
    cursor.execute("SET LOCAL synchronous_commit = off")


def _probe_by_index(cursor):
    """Each chunk is 10,000 rows against a table of millions whose statistics do not count the rows
    this transaction already wrote: without this the planner may hash the whole table once per
    chunk. Index probes per staged row are the right plan at every size here. Returns the prior
    settings so that a caller's transaction can get them back."""
    cursor.execute("SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')")
    prior = cursor.fetchone()
    cursor.execute("SET LOCAL enable_hashjoin = off")
    cursor.execute("SET LOCAL enable_mergejoin = off")
    return prior


def _restore_joins(cursor, prior):
    cursor.execute("SELECT set_config('enable_hashjoin', %s, true), set_config('enable_mergejoin', %s, true)", list(prior))


class _Lander:
    """Validated rows in, formatted chunks out (in the validating thread); subclasses land them."""

    def __init__(self, resource, ctx, before_commit=None):
        self.resource = resource
        self.ctx = ctx
        self.model = resource.model
        self.plan = None
        self.buffer = []
        self.before_commit = before_commit

    def add(self, values, number):
        if self.plan is None:
            self.plan = _Plan(self.resource, self.ctx, list(values))
        self.buffer.append(self.plan.pick(values))
        if len(self.buffer) >= CHUNK_ROWS:
            self.flush()

    def flush(self):
        if not self.buffer:
            return
        chunk = self.plan.format(self.buffer)
        self.buffer = []
        self._send(chunk)


class CopyLander(_Lander):
    """Inside a caller's transaction: chunks wait in a temporary file and land at `land()` on this
    connection, so nothing is written before the whole file has been validated."""

    def __init__(self, resource, ctx, before_commit=None):
        super().__init__(resource, ctx, before_commit)
        self.spool = None
        self.chunks = []  # (ids, rows, length) in spool order

    def _send(self, chunk):
        if self.spool is None:
            self.spool = tempfile.TemporaryFile()
        self.spool.write(chunk.data)
        self.chunks.append((chunk.ids, chunk.rows, len(chunk.data)))

    def land(self):
        """Write everything in one transaction (a savepoint of the caller's); returns (created, updated)."""
        self.flush()
        if self.plan is None:
            return 0, 0
        self.spool.seek(0)
        with transaction.atomic(), connection.cursor() as cursor:
            _lock_table(cursor, self.model)
            _fast_commit(cursor)
            hashjoin, mergejoin = _probe_by_index(cursor)
            landing = _Landing(self.plan, cursor)
            for ids, rows, length in self.chunks:
                landing.land(Chunk(ids, rows, self.spool.read(length)))
            landing.finish()
            _restore_joins(cursor, (hashjoin, mergejoin))
            if self.before_commit:
                self.before_commit(cursor)
        self.discard()
        return landing.created, landing.updated

    def discard(self):
        self.buffer = []
        self.chunks = []
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        self.plan = None


_COMMIT = object()
_ROLLBACK = object()


class _RolledBack(Exception):
    pass


class OverlappedCopyLander(_Lander):
    """The same chunks, landed on a second connection inside one transaction while this thread
    validates the next ones: the database works while Python parses.

    Nothing is committed until `land()`; `discard()` (a bad row in an all-or-nothing import, a
    rejected file, any error) rolls the whole transaction back, so a failure still lands nothing.
    """

    def __init__(self, resource, ctx, before_commit=None):
        super().__init__(resource, ctx, before_commit)
        self.queue = queue.Queue(maxsize=3)  # bounds memory: a few chunks in flight
        self.thread = None
        self.error = None
        self.created = self.updated = 0

    def _send(self, chunk):
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name="import-lander", daemon=True)
            self.thread.start()
        self.queue.put(chunk)
        if self.error is not None:
            raise self.error

    def _begin(self, cursor):
        _lock_table(cursor, self.model)
        _fast_commit(cursor)
        # The foreign keys are DEFERRABLE INITIALLY DEFERRED (Django's default): left so, a million
        # rows queue two million key checks that all run at COMMIT, after the file is read.
        # Checked at the end of each chunk's statements instead, they run while this thread's
        # partner parses the next chunk. Same checks, same outcome: a failure still aborts the one
        # transaction and lands nothing.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        self.prior_joins = _probe_by_index(cursor)

    def _work(self):
        from django.db import connections

        committing = False
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                self._begin(cursor)
                landing = _Landing(self.plan, cursor)
                while True:
                    chunk = self.queue.get()
                    if chunk is _COMMIT:
                        committing = True
                        break
                    if chunk is _ROLLBACK:
                        raise _RolledBack
                    landing.land(chunk)
                landing.finish()
                # The chunks' index probes are done: what runs last (the KPI refresh groups a month
                # of claims against a million persons) plans with hash joins again. Left off, the
                # refresh of one month took minutes of nested loops at city scale.
                _restore_joins(cursor, self.prior_joins)
                if self.before_commit:
                    self.before_commit(cursor)
                self.created, self.updated = landing.created, landing.updated
        except _RolledBack:
            pass
        except BaseException as exc:  # handed to the validating thread at its next flush or at land()
            self.error = exc
            # Once _COMMIT is taken (a failure at the end, a cancelled job), land() waits in join().
            while not committing and self.queue.get() not in (_COMMIT, _ROLLBACK):
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
        if self.plan is None:
            return 0, 0
        self.flush()
        self._finish(_COMMIT)
        if self.error is not None:
            raise self.error
        self.plan = None
        return self.created, self.updated

    def discard(self):
        self.buffer = []
        self._finish(_ROLLBACK)
        self.plan = None


class OrmLander:
    """Row by row through the ORM (small self-referencing master data)."""

    def __init__(self, resource, ctx, before_commit=None):
        self.resource = resource
        self.ctx = ctx
        self.rows = []
        self.before_commit = before_commit

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
            if self.before_commit:
                with connection.cursor() as cursor:
                    self.before_commit(cursor)
        self.rows = []
        return created, updated

    def discard(self):
        self.rows = []


def _attname(model, column):
    for field in model._meta.concrete_fields:
        if field.column == column:
            return field.attname
    return column
