"""One guarded state machine for everything that is approved (SPEC §1, §7).

草稿 → 已审批 (standards, policies) and 已计算 → 已审核 → 已拨付 (runs). Once a row is locked it is
immutable through every door: the admin checks `locked_reason` before it offers a form, and the model
itself refuses to save or delete a locked row (`Guarded`), so an action, a history revert or a
service that forgets to check cannot slip past. Entering the locked state is only possible through
`approve` (or a service that marks the transition explicitly), which takes the approver from the
acting user, never from a form field.
"""
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from alliances.scope import Role, scope_for


class Refused(Exception):
    """A request the portal refuses; the message is Chinese and meant for the user."""


class LockedError(Refused, PermissionDenied):
    """A write to a locked (approved) row; an admin view that reaches it answers 403."""


class Guarded:
    """Model mixin: a row whose stored version is locked cannot be saved or deleted.

    `locked_reason()` says whether a row is locked; `allowed_locked_change(stored, changed)` lets a
    model name the few changes a locked row may still take (a run going from 已审核 to 已拨付).
    """

    # False where the lock comes from another row (a unit result from its run): nothing to enter then.
    lock_is_own_status = True

    def allowed_locked_change(self, stored, changed):
        return False

    def _stored(self):
        if self.pk is None:
            return None
        return type(self)._base_manager.filter(pk=self.pk).first()

    def save(self, *args, **kwargs):
        stored = None if kwargs.get("force_insert") else self._stored()
        if stored is not None:
            reason = stored.locked_reason()
            changed = {
                f.attname for f in self._meta.concrete_fields
                if getattr(stored, f.attname) != getattr(self, f.attname)
            }
            revising = getattr(self, "_revising", False) and changed <= REVISION_FIELDS
            if reason and changed and not revising and not self.allowed_locked_change(stored, changed):
                raise LockedError(reason)
            if (self.lock_is_own_status and not reason and not getattr(self, "_entering_lock", False)
                    and self.locked_reason()):
                raise LockedError(f"{self}只能通过审批操作进入“{self.get_status_display()}”状态")
        super().save(*args, **kwargs)
        self._entering_lock = self._revising = False

    def delete(self, *args, **kwargs):
        stored = self._stored()
        reason = stored.locked_reason() if stored is not None else None
        if reason:
            raise LockedError(reason)
        return super().delete(*args, **kwargs)


# What `revise` changes on an approved row: it becomes the next version's draft, nothing else moves.
REVISION_FIELDS = frozenset({"status", "approved_by_id", "approved_at", "version"})


def require_approver(user, what):
    """Only the city bureau approves (SPEC §1); `user=None` is the system itself (seed, tests)."""
    if user is None or user.is_superuser:
        return
    if scope_for(user).role != Role.CITY:
        raise Refused(f"您没有权限{what}：只有市医保局可以审批")


def approver(user):
    return user if user is not None and user.pk else None


def last_changed_by(model, pks):
    """pk → id of the user who last changed each row (None: the system), from its change history.

    Every door writes history (forms, imports, the CLI, services), so this is the one record of
    authorship for any approvable model — a benefit table included — without a column of its own.
    """
    history = getattr(model, "history", None)
    if history is None or not pks:
        return {}
    key = model._meta.pk.attname
    rows = (
        history.model.objects.filter(**{f"{key}__in": list(pks)})
        .order_by(key, "-history_date", "-history_id").distinct(key)
        .values_list(key, "history_user_id")
    )
    return dict(rows)


def require_four_eyes(user, rows, authors, what, act="最后修改"):
    """Refuse when `user` is the author (who computed or last changed) of any of `rows` (SPEC §1,
    issue 18 finding 5): an approval needs a second person. `authors`: row pk → user id."""
    if user is None or not user.pk:
        return  # the system itself (seed, migrations): nobody to compare with
    own = [row for row in rows if authors.get(row.pk) == user.pk]
    if own:
        names = "、".join(f"“{row}”" for row in own[:5]) + ("等" if len(own) > 5 else "")
        raise Refused(
            f"不能{what}：{names}由您本人{act}，须由另一位有审批权限的用户审批（四眼原则）"
        )


def enter_lock(row, user, *, status, stamp="approved"):
    """Move `row` into a locked status, recording who and when from the acting user."""
    row.status = status
    if stamp:
        setattr(row, f"{stamp}_by", approver(user))
        setattr(row, f"{stamp}_at", timezone.now())
    if approver(user) is not None:
        # The history names the approver even without a request (command line, tasks); in the admin
        # it is the same user the history middleware would record.
        row._history_user = approver(user)
    row._entering_lock = True
    row.save()
    return row


def approve(row, user, *, draft, approved, what, check=None):
    """Approve one draft row under a row lock; `check(row)` may refuse with a Chinese reason."""
    require_approver(user, what)
    with transaction.atomic():
        row = type(row)._base_manager.select_for_update().get(pk=row.pk)
        if row.status != draft:
            raise Refused(f"{row}当前为“{row.get_status_display()}”，只有草稿可以审批")
        require_four_eyes(user, [row], last_changed_by(type(row), [row.pk]), what)
        if check is not None:
            check(row)
        return enter_lock(row, user, status=approved)


def approve_drafts(queryset, user, *, draft, approved, what):
    """Approve every draft among `queryset`'s rows at once; returns how many were approved."""
    require_approver(user, what)
    model = queryset.model
    with transaction.atomic():
        # Re-read by key: an admin queryset may carry outer joins that FOR UPDATE refuses.
        rows = model._base_manager.select_for_update().filter(
            pk__in=list(queryset.values_list("pk", flat=True)), status=draft,
        ).order_by("pk")
        rows = list(rows)
        # All or none: one draft the approver changed stops the batch, named in the refusal.
        require_four_eyes(user, rows, last_changed_by(model, [row.pk for row in rows]), what)
        count = 0
        for row in rows:
            enter_lock(row, user, status=approved)
            count += 1
    return count


def revise(row, user, *, draft, approved, what):
    """Open the next version of an approved row as a draft (the city bureau's explicit act, SPEC §7).

    The approved version stays in the change history with its approver; runs settled on it keep their
    own snapshot of what they used. Until the new draft is approved nothing settles on it.
    """
    require_approver(user, what)
    with transaction.atomic():
        row = type(row)._base_manager.select_for_update().get(pk=row.pk)
        if row.status != approved:
            raise Refused(f"{row}当前为“{row.get_status_display()}”，只有已审批的才需要建立新版本，草稿可直接修改")
        row.status, row.approved_by, row.approved_at = draft, None, None
        row.version += 1
        row._revising = True
        row._change_reason = f"建立第{row.version}版草稿（第{row.version - 1}版已审批，保留在变更记录中）"
        row.save()
    return row
