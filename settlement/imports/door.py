"""The spreadsheet pipeline as alliances' ScopedAdmin sees it (alliances.hooks door "spreadsheets").

Every model admin of the portal, alliances' and contracts' included, has the import, template and
export buttons of SPEC §4; the pipeline behind them is settlement's. This module names exactly what
those buttons call, so alliances reaches it through the door settlement.apps fills, never by import.
"""
from settlement.jobs import sweep_if_stale
from settlement.models import Job, JobKind, JobStatus

from .errors import ImportRejected
from .export import write_csv, write_template, write_xlsx
from .resources import BY_MODEL
from .services import can_cancel_import, can_retry_import, cancel_import, may_manage_import, retry_import, submit_import

CANCELLED = JobStatus.CANCELLED

__all__ = [
    "BY_MODEL", "CANCELLED", "ImportRejected", "can_cancel_import", "can_retry_import", "cancel_import",
    "import_jobs", "may_manage_import", "retry_import", "submit_import", "sweep_if_stale", "write_csv",
    "write_template", "write_xlsx",
]


def import_jobs(resource_name):
    """The import jobs of one resource (unrestricted: the admin restricts them to the user)."""
    return Job.objects.filter(kind=JobKind.IMPORT, params__resource=resource_name)
