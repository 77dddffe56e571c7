from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from alliances.scope import Role
from alliances.services import create_user


class Command(BaseCommand):
    help = "创建可登录管理后台的用户，并赋予角色和数据范围（SPEC §5）"

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=list(Role.LABELS))
        parser.add_argument("--scope", help="county/health：区划代码；hospital：机构编码")
        parser.add_argument("--password")

    def handle(self, username, role, scope=None, password=None, **options):
        try:
            user = create_user(username, role, scope, password)
        except ValidationError as exc:
            raise CommandError("；".join(exc.messages)) from None
        where = f"，范围 {scope}" if scope else ""
        self.stdout.write(f"已创建用户 {user.username}（{Role.LABELS[role]}{where}）")
