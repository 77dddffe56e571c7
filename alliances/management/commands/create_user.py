import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation

from alliances.scope import Role
from alliances.services import create_user


class Command(BaseCommand):
    help = "创建可登录管理后台的用户，并赋予角色和数据范围（SPEC §5）"

    def add_arguments(self, parser):
        parser.add_argument("username")
        # The role is checked by the service, so an unknown one gets a Chinese message, not argparse's.
        parser.add_argument("--role", required=True, help="city / county / health / hospital / auditor")
        parser.add_argument("--scope", help="county/health：区划代码；hospital：机构编码")
        parser.add_argument("--password", help="不填则为新用户生成一个随机密码并显示一次")

    def handle(self, username, role, scope=None, password=None, **options):
        # Django's own messages (the password validators') follow the active language, not the portal's.
        with translation.override(settings.LANGUAGE_CODE):
            self._create(username, role, scope, password)

    def _create(self, username, role, scope, password):
        generated = None
        if not password:
            existing = get_user_model().objects.filter(username=username).first()
            if existing is None or not existing.has_usable_password():
                # SPEC §5: the user can log in at once, so a new account always gets a password.
                generated = password = secrets.token_urlsafe(12)
        try:
            user = create_user(username, role, scope, password)
        except ValidationError as exc:
            raise CommandError("；".join(exc.messages)) from None
        where = f"，范围 {scope}" if scope else ""
        self.stdout.write(f"已创建用户 {user.username}（{Role.LABELS[role]}{where}）")
        if generated:
            self.stdout.write(f"初始密码：{generated}（仅显示这一次，请登录后修改）")
