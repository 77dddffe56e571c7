"""Spreadsheet import and export (SPEC §4): one path behind the CLI, the admin and Celery."""
