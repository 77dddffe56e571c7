from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from settlement.imports.errors import ImportRejected
from settlement.imports.resources import RESOURCES
from settlement.imports.services import import_file


class Command(BaseCommand):
    help = "导入xlsx或csv表格（SPEC §4、§5）：默认全部正确才导入；--land-good-rows 只导入正确的行"

    def add_arguments(self, parser):
        parser.add_argument("resource", help=f"导入类型：{', '.join(RESOURCES)}")
        parser.add_argument("file", help="xlsx或csv文件")
        parser.add_argument(
            "--land-good-rows", action="store_true",
            help="只导入正确的行，错误行写入 <文件名>.errors.xlsx",
        )

    def handle(self, resource, file, land_good_rows=False, **options):
        path = Path(file)
        if resource not in RESOURCES:
            raise CommandError(f"未知的导入类型“{resource}”，可选：{', '.join(RESOURCES)}")
        if not path.is_file():
            raise CommandError(f"找不到文件：{path}")
        error_path = path.with_name(f"{path.stem}.errors.xlsx") if land_good_rows else None
        try:
            result = import_file(resource, path, land_good_rows=land_good_rows, error_path=error_path)
        except ImportRejected as exc:
            raise CommandError(exc.message) from None
        except DatabaseError as exc:
            # Everything lands in one transaction, so a database failure leaves nothing behind.
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"导入失败：数据库错误（{first_line}），未导入任何数据") from None
        if not result.landed:
            for error in result.errors:
                column = error.column or "-"
                self.stderr.write(f"第{error.row}行\t列：{column}\t值：{error.value}\t原因：{error.reason}")
            if result.bad_rows > len(result.errors):
                self.stderr.write(f"……另有{result.bad_rows - len(result.errors)}行错误未列出")
            raise CommandError(result.summary())
        self.stdout.write(result.summary())
        if result.error_file:
            self.stdout.write(f"错误行已写入：{result.error_file}")
