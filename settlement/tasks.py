"""Celery tasks of the settlement app itself (the others live beside their services)."""
from celery import shared_task

from alliances.services import sync_role_groups
from settlement import jobs


@shared_task
def sync_roles_job(job_id):
    """Rebuild the role groups' permissions (after an upgrade adds models), recorded as a job."""
    jobs.start(job_id, total=1)
    try:
        sync_role_groups()
    except Exception as exc:
        jobs.finish(job_id, f"角色权限同步失败：{exc}", failed=True)
        raise
    jobs.finish(job_id, "角色权限已同步", counts={"roles": 5})
