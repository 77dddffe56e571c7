from django.core.management.base import BaseCommand, CommandError

from settlement.audit.services import AuditError, start_audit
from settlement.models import JobStatus


class Command(BaseCommand):
    help = "运行智能审核规则（SPEC §5、§9）：audit --year YYYY [--rule CODE]... [--region CODE] [--sync]"

    def add_arguments(self, parser):
        parser.add_argument("--year", required=True, help="审核年度，如2025")
        parser.add_argument("--rule", action="append", dest="rules", help="规则编码，可重复；不填为全部规则")
        parser.add_argument("--region", help="县区区划代码；不填为全市")
        parser.add_argument("--sync", action="store_true", help="在本进程内审核完成后再返回（不经后台任务）")

    def handle(self, year, rules=None, region=None, sync=False, **options):
        try:
            job = start_audit(year, rules, region_code=region, sync=sync)
        except AuditError as exc:
            raise CommandError(str(exc)) from None
        if job.status == JobStatus.FAILED:
            raise CommandError(job.message or "审核失败")
        if job.status == JobStatus.SUCCEEDED:
            self.stdout.write(job.message)
            for line in job.log.splitlines():
                self.stdout.write(line.split(" ", 1)[-1])
        else:
            self.stdout.write(f"{job.title}已提交后台运行（任务号{job.pk}），可在管理后台查看进度")
