"""Writes to users, roles and memberships."""
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Institution, Region, UserScope
from .scope import Role

PORTAL_APPS = ("alliances", "contracts", "settlement")

# Model-level permissions per role; rows a user may touch are then bounded by scope.
# "*" means every model of the portal apps.
_ROLE_PERMISSIONS = {
    Role.CITY: {"view": "*", "add": "*", "change": "*", "delete": "*"},
    Role.COUNTY: {
        "view": "*",
        "add": [
            "institution", "alliance", "membership", "insuredperson", "diseaseregistration",
            "familydoctorteam", "contract", "capitationstandard", "specialstandard", "specialdesignation",
            "budget", "assessment", "payment", "drgcoefficient", "outpatientclaim", "inpatientcase",
            "familydoctorservice", "alliancebudgetplan", "citylevelbudgetitem",
            "paymentpolicy", "benefitrule", "referral", "relocation",
        ],
        "change": [
            "institution", "alliance", "membership", "insuredperson", "diseaseregistration",
            "familydoctorteam", "contract", "capitationstandard", "specialstandard", "specialdesignation",
            "budget", "assessment", "payment", "drgcoefficient", "outpatientclaim", "inpatientcase",
            "familydoctorservice", "alliancebudgetplan", "citylevelbudgetitem",
            "paymentpolicy", "benefitrule", "referral", "relocation",
            "settlementrun",  # the settlement engine: county runs its own settlements
            "casereview", "diseaseexitrequest",  # decides its county's inpatient requests
            "finding",  # decides its county's audit findings (SPEC §9)
        ],
        "delete": [],
    },
    Role.HEALTH: {
        "view": [
            "exportrecord", "region", "institution", "alliance", "membership", "insuredperson", "disease",
            "diseaseregistration", "servicepackage", "servicepackageitem", "familydoctorteam", "contract",
            "familydoctorservice", "budgetapplication", "budgetworkflowstep",
        ],
        "add": ["familydoctorteam", "contract"],
        "change": ["familydoctorteam", "contract"],
        "delete": [],
    },
    Role.HOSPITAL: {
        "view": [
            "exportrecord", "region", "institution", "alliance", "membership", "insuredperson", "disease",
            "diseaseregistration", "servicepackage", "servicepackageitem", "familydoctorteam", "contract",
            "outpatientclaim", "inpatientcase", "familydoctorservice", "specialdesignation",
            "capitationstandard", "specialstandard", "drggroup", "drgcoefficient", "beddayquota",
            "diseasestandard", "budget", "assessment", "payment",
            "budgetapplication", "budgetworkflowstep", "alliancebudgetplan", "citylevelbudgetitem",
            "memberallocation", "kpitarget",
            "paymentpolicy", "settlementrun", "unitresult",  # own statements (settlement engine)
            "simulation", "simulationunit",  # the bureau's 政策模拟, own units only
            "casereview", "diseaseexitrequest",
            "drganalysis",  # DRG 运行分析: own institutions beside the pool average
            "benefittable", "benefitrule", "referral", "benefitfigure",  # §6.8: own referrals and figures
            "finding", "findingstep",  # its own audit findings and their review
        ],
        "add": [
            "referral",  # the referrals it sent or received
            "insuredperson", "diseaseregistration", "familydoctorteam", "contract", "outpatientclaim",
            "inpatientcase", "familydoctorservice", "specialdesignation", "budgetapplication",
            "casereview", "diseaseexitrequest",  # files 特病单议 and exit requests
        ],
        "change": [
            "diseaseregistration", "familydoctorteam", "contract", "outpatientclaim", "inpatientcase",
            "familydoctorservice", "specialdesignation", "budgetapplication", "referral",
            "finding",  # appeals its own findings (SPEC §9)
        ],
        "delete": [],
    },
    Role.AUDITOR: {"view": "*", "add": [], "change": [], "delete": []},
}


def role_permissions(role):
    """The Permission queryset a role's group holds."""
    spec = _ROLE_PERMISSIONS[role]
    portal = Permission.objects.filter(content_type__app_label__in=PORTAL_APPS)
    wanted = Permission.objects.none()
    for action, models in spec.items():
        of_action = portal.filter(codename__startswith=f"{action}_")
        if models == "*":
            wanted |= of_action
        elif models:
            names = set(models) | {f"historical{name}" for name in models}
            wanted |= of_action.filter(content_type__model__in=names)
    return wanted


def sync_role_groups(using="default"):
    """Create or refresh one group per role (named in Chinese) with exactly its permissions."""
    for role, label in Role.CHOICES:
        group, _ = Group.objects.using(using).get_or_create(name=label)
        group.permissions.set(role_permissions(role).using(using))


@transaction.atomic
def create_user(username, role, scope_code=None, password=None):
    """Create (or update) a staff user with a role and scope (SPEC §5 create_user)."""
    if role not in Role.LABELS:
        raise ValidationError(f"角色“{role}”无效，可选：{', '.join(Role.LABELS)}")
    region = institution = None
    if role in Role.REGIONAL:
        if not scope_code:
            raise ValidationError(f"{Role.LABELS[role]}用户必须用 --scope 指定区划代码")
        region = Region.objects.filter(code=scope_code).first()
        if region is None:
            raise ValidationError(f"区划代码“{scope_code}”不存在")
    elif role == Role.HOSPITAL:
        if not scope_code:
            raise ValidationError("医疗机构用户必须用 --scope 指定机构编码")
        institution = Institution.objects.filter(code=scope_code).first()
        if institution is None:
            raise ValidationError(f"机构编码“{scope_code}”不存在")
    elif scope_code:
        raise ValidationError(f"{Role.LABELS[role]}用户的范围是全市，不需要 --scope")

    User = get_user_model()
    if password:
        # Checked before anything is written, so a refused password creates no account at all.
        existing = User.objects.filter(username=username).first()
        try:
            password_validation.validate_password(password, user=existing or User(username=username))
        except ValidationError as exc:
            raise ValidationError("密码不符合要求：" + "".join(exc.messages)) from None

    sync_role_groups()
    user, _ = User.objects.get_or_create(username=username)
    user.is_staff = True
    user.is_superuser = False
    if password:
        user.set_password(password)
    elif not user.has_usable_password():
        user.set_unusable_password()
    user.save()
    user.groups.set([Group.objects.get(name=Role.LABELS[role])])
    UserScope.objects.update_or_create(
        user=user, defaults={"role": role, "region": region, "institution": institution},
    )
    return user
