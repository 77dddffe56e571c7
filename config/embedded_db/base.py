"""The database ENGINE of the embedded default (no DATABASE_URL): Django's PostgreSQL backend whose
failed connections say, when the embedded server is down, how to start it."""
import psycopg
from django.db.backends.postgresql import base

from . import not_running_hint


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        try:
            return super().get_new_connection(conn_params)
        except psycopg.OperationalError as exc:
            hint = not_running_hint()
            if hint is None:
                raise
            raise psycopg.OperationalError(f"{exc}\n{hint}") from exc
