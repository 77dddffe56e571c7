"""The admin base every portal model admin uses: scope on every query, history, no leaks."""
from django.contrib.admin.utils import unquote
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin

from .scope import ScopedModel, restrict, scope_for


class ScopedAdmin(SimpleHistoryAdmin):
    """Changelists, change views, autocompletes and FK choices limited to the user's scope."""

    list_per_page = 50
    show_full_result_count = False  # counting 30 million claims on every page is not free

    def get_queryset(self, request):
        return restrict(super().get_queryset(request), request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if issubclass(related, ScopedModel) and "queryset" not in kwargs:
            kwargs["queryset"] = restrict(related._default_manager.all(), request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _require_in_scope(self, request, object_id):
        if object_id is None:
            return
        model = self.model
        try:
            pk = model._meta.pk.to_python(unquote(object_id))
        except Exception:
            raise Http404("对象不存在") from None
        if not self.get_queryset(request).filter(pk=pk).exists():
            # Same answer whether the row exists elsewhere or not at all: no probing.
            raise Http404("对象不存在或不在您的数据范围内")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._require_in_scope(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._require_in_scope(request, object_id)
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._require_in_scope(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._require_in_scope(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)

    def user_scope(self, request):
        return scope_for(request.user)
