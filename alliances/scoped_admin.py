"""The admin base every portal model admin uses: scope on every query, history, no leaks,
and (for every model with a spreadsheet resource, SPEC §4) import, template and export buttons."""
import io
import tempfile

from django import forms
from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse, HttpResponseForbidden, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin

from .history_admin import AuditHistoryMixin
from .hooks import door
from .export_trail import ADMIN_EXPORT, ERROR_LIST, describe_filters, record_export
from .scope import Role, ScopedModel, restrict, scope_for, write_refusal


def write_checked(form_class, user):
    """`form_class` that refuses, with the Chinese reason, a row the user may not write as filled in.

    The check runs on the instance after the form has put the new values on it, so choosing an
    out-of-scope county, institution or 单位编码 is caught however the POST was made.
    """

    class WriteChecked(form_class):
        def _post_clean(self):
            super()._post_clean()
            refusal = write_refusal(self.instance, user)
            if refusal:
                self.add_error(None, refusal)

    WriteChecked.__name__ = form_class.__name__
    WriteChecked.__qualname__ = form_class.__qualname__
    return WriteChecked


class ScopedWrites:
    """Write rule shared by model admins and inlines: scoped FK choices, scoped rows, locked rows."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.remote_field.model
        if issubclass(related, ScopedModel) and "queryset" not in kwargs:
            kwargs["queryset"] = restrict(related._default_manager.all(), request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or write_refusal(obj, request.user) is None

    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or write_refusal(obj, request.user) is None


class ScopedInline(ScopedWrites):
    """Mixin for inlines: the parent's form is checked by its admin, each inline row on save."""

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        user = request.user

        class WriteCheckedFormSet(formset):
            def save_new(self, form, commit=True):
                _refuse_unless_writable(form.instance, user)
                return super().save_new(form, commit)

            def save_existing(self, form, obj, commit=True):
                _refuse_unless_writable(form.instance, user)
                return super().save_existing(form, obj, commit)

            def delete_existing(self, obj, commit=True):
                _refuse_unless_writable(obj, user)
                return super().delete_existing(obj, commit)

        return WriteCheckedFormSet


def _refuse_unless_writable(obj, user):
    refusal = write_refusal(obj, user)
    if refusal:
        # Raised inside the admin's atomic save: the parent row written a moment ago is rolled back too.
        raise PermissionDenied(refusal)


class ImportForm(forms.Form):
    file = forms.FileField(label="文件（xlsx或csv）")
    land_good_rows = forms.BooleanField(
        label="只导入正确的行", required=False,
        help_text="不勾选：有任何错误行则整个文件都不导入；勾选：导入正确的行，错误行生成可下载的错误清单",
    )

    def clean_file(self):
        from config.uploads import too_large_message

        upload = self.cleaned_data["file"]
        if getattr(upload, "refused", False):
            # The upload handler kept none of it; say so here rather than let a job find out later.
            raise forms.ValidationError(too_large_message())
        if not upload.name.lower().endswith((".xlsx", ".csv")):
            raise forms.ValidationError("只支持xlsx或csv文件")
        return upload


class ScopedAdmin(ScopedWrites, AuditHistoryMixin, SimpleHistoryAdmin):
    """Changelists, change views, autocompletes and FK choices limited to the user's scope.

    Writing is scoped like reading (SPEC §1): every add, change, delete, bulk delete and history
    revert goes through `write_refusal`, and a locked (approved) row offers no form at all.
    """

    list_per_page = 50
    show_full_result_count = False  # counting 30 million claims on every page is not free
    change_list_template = "admin/portal/change_list.html"

    def get_queryset(self, request):
        return restrict(super().get_queryset(request), request.user)

    def get_form(self, request, obj=None, change=False, **kwargs):
        return write_checked(super().get_form(request, obj, change, **kwargs), request.user)

    def has_approve_permission(self, request):
        """Approving is the city bureau's (SPEC §1); admin actions declare permissions=["approve"]."""
        return request.user.is_superuser or scope_for(request.user).role == Role.CITY

    def save_model(self, request, obj, form, change):
        _refuse_unless_writable(obj, request.user)
        super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        _refuse_unless_writable(obj, request.user)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            _refuse_unless_writable(obj, request.user)
        super().delete_queryset(request, queryset)

    def revert_disabled(self, request, obj=None):
        if super().revert_disabled(request, obj):
            return True
        stored = self.model._base_manager.filter(pk=obj.pk).first() if obj is not None else None
        return stored is None or write_refusal(stored, request.user) is not None

    def object_lookup(self, pk):
        """The filter that finds one row by its primary key; a model whose key no index holds (a view's
        computed id) names the columns that find it instead."""
        return Q(pk=pk)

    def _require_in_scope(self, request, object_id):
        if object_id is None:
            return
        model = self.model
        try:
            pk = model._meta.pk.to_python(unquote(object_id))
        except Exception:
            raise Http404("对象不存在") from None
        if not self.get_queryset(request).filter(self.object_lookup(pk)).exists():
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
        # simple-history lets anyone who may *view* history POST a revert; a revert is a write, and an
        # approved row (or one the user may not write) is never reverted.
        if request.method == "POST":
            stored = self.model._base_manager.filter(pk=unquote(object_id)).first()
            if not self.has_change_permission(request, stored) or self.revert_disabled(request, stored):
                raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def user_scope(self, request):
        return scope_for(request.user)

    # --- spreadsheet import / export (SPEC §4) -------------------------------------------------

    @property
    def spreadsheet_resource(self):
        return spreadsheets().BY_MODEL.get(self.model)

    def has_import_permission(self, request):
        resource = self.spreadsheet_resource
        return resource is not None and request.user.has_perm(resource.permission)

    def has_export_permission(self, request):
        return self.spreadsheet_resource is not None and self.has_view_permission(request)

    def _url_name(self, action):
        opts = self.model._meta
        return f"{opts.app_label}_{opts.model_name}_{action}"

    def get_urls(self):
        urls = super().get_urls()
        if self.spreadsheet_resource is None:
            return urls
        wrap = self.admin_site.admin_view
        return [
            path("import/", wrap(self.import_view), name=self._url_name("import")),
            path("import/template/", wrap(self.import_template_view), name=self._url_name("import_template")),
            path("import/jobs/<int:job_id>/", wrap(self.import_job_view), name=self._url_name("import_job")),
            path("import/jobs/<int:job_id>/status/", wrap(self.import_job_status), name=self._url_name("import_job_status")),
            path("import/jobs/<int:job_id>/result/", wrap(self.import_job_result), name=self._url_name("import_job_result")),
            path("import/jobs/<int:job_id>/retry/", wrap(self.import_job_retry), name=self._url_name("import_job_retry")),
            path("import/jobs/<int:job_id>/cancel/", wrap(self.import_job_cancel), name=self._url_name("import_job_cancel")),
            path("export/", wrap(self.export_view), name=self._url_name("export")),
        ] + urls

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        if self.spreadsheet_resource is not None:
            query = request.GET.urlencode()
            export_url = reverse(f"admin:{self._url_name('export')}")
            extra_context.update(
                portal_import_url=reverse(f"admin:{self._url_name('import')}") if self.has_import_permission(request) else None,
                portal_template_url=reverse(f"admin:{self._url_name('import_template')}") if self.has_import_permission(request) else None,
                portal_export_xlsx_url=f"{export_url}?{query}{'&' if query else ''}_format=xlsx" if self.has_export_permission(request) else None,
                portal_export_csv_url=f"{export_url}?{query}{'&' if query else ''}_format=csv" if self.has_export_permission(request) else None,
            )
        return super().changelist_view(request, extra_context)

    def _context(self, request, title, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "resource": self.spreadsheet_resource,
            **extra,
        }

    def import_view(self, request):
        sheets = spreadsheets()
        if not self.has_import_permission(request):
            raise PermissionDenied
        resource = self.spreadsheet_resource
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = sheets.submit_import(
                    resource.name, form.cleaned_data["file"], request.user, form.cleaned_data["land_good_rows"],
                )
            except sheets.ImportRejected as exc:
                form.add_error(None, exc.message)
            else:
                return redirect(reverse(f"admin:{self._url_name('import_job')}", args=[job.pk]))
        recent = [
            (job, reverse(f"admin:{self._url_name('import_job')}", args=[job.pk]))
            for job in self._import_jobs(request)[:10]
        ]
        return TemplateResponse(request, "admin/portal/import.html", self._context(
            request, f"导入{resource.title}", form=form, recent_jobs=recent,
            template_url=reverse(f"admin:{self._url_name('import_template')}"),
        ))

    def import_template_view(self, request):
        if not self.has_import_permission(request):
            raise PermissionDenied
        resource = self.spreadsheet_resource
        buffer = io.BytesIO()
        spreadsheets().write_template(resource, buffer)
        return _download(buffer.getvalue(), f"{resource.name}_template.xlsx")

    def _import_jobs(self, request):
        jobs = restrict(spreadsheets().import_jobs(self.spreadsheet_resource.name), request.user)
        if not scope_for(request.user).sees_all:
            # Within an institution or county, jobs are still personal: files hold other people's data.
            jobs = jobs.filter(user=request.user)
        return jobs.order_by("-created_at")

    def _import_job(self, request, job_id):
        if not self.has_import_permission(request) and not self.has_view_permission(request):
            raise PermissionDenied
        job = self._import_jobs(request).filter(pk=job_id).first()
        if job is None:
            raise Http404("任务不存在或不在您的数据范围内")
        return job

    def import_job_view(self, request, job_id):
        sheets = spreadsheets()
        job = sheets.sweep_if_stale(self._import_job(request, job_id))
        return TemplateResponse(request, "admin/portal/import_job.html", self._context(
            request, f"导入任务：{job.title}", job=job,
            status_url=reverse(f"admin:{self._url_name('import_job_status')}", args=[job.pk]),
            changelist_url=reverse(f"admin:{self._url_name('changelist')}"),
            import_url=reverse(f"admin:{self._url_name('import')}"),
            cancel_url=reverse(f"admin:{self._url_name('import_job_cancel')}", args=[job.pk])
            if sheets.can_cancel_import(job, request.user) else None,
            retry_url=reverse(f"admin:{self._url_name('import_job_retry')}", args=[job.pk])
            if sheets.can_retry_import(job, request.user) else None,
            retry_of_url=reverse(f"admin:{self._url_name('import_job')}", args=[job.retry_of_id])
            if job.retry_of_id and self._import_jobs(request).filter(pk=job.retry_of_id).exists() else None,
        ))

    def import_job_status(self, request, job_id):
        sheets = spreadsheets()
        job = sheets.sweep_if_stale(self._import_job(request, job_id))
        result_url = (
            reverse(f"admin:{self._url_name('import_job_result')}", args=[job.pk]) if job.result_file else None
        )
        return JsonResponse({
            "id": job.pk,
            "status": job.status,
            "status_display": job.get_status_display(),
            "finished": job.is_finished,
            "cancelled": job.status == sheets.CANCELLED,
            "can_cancel": sheets.can_cancel_import(job, request.user),
            "can_retry": sheets.can_retry_import(job, request.user),
            "done": job.progress_done,
            "total": job.progress_total,
            "percent": job.percent,
            "message": job.message,
            "counts": job.counts,
            "log": job.log,
            "result_url": result_url,
        })

    def import_job_result(self, request, job_id):
        job = self._import_job(request, job_id)
        if not job.result_file:
            raise Http404("该任务没有结果文件")
        name = f"错误清单_{job.pk}.xlsx"
        # The bad rows carry the uploaded cells in full (ID numbers included): the trail records it.
        record_export(request.user, channel=ERROR_LIST, resource=self.spreadsheet_resource.name,
                      title=f"{self.spreadsheet_resource.title}导入错误清单", rows=(job.counts or {}).get("bad_rows", 0),
                      filters=f"导入任务#{job.pk}：{job.title}", file_name=name)
        return FileResponse(job.result_file.open("rb"), as_attachment=True, filename=name)

    def import_job_cancel(self, request, job_id):
        return self._import_job_post(request, job_id, spreadsheets().cancel_import, "导入已取消，未导入任何数据")

    def import_job_retry(self, request, job_id):
        return self._import_job_post(request, job_id, spreadsheets().retry_import, "已重新提交导入，正在后台运行")

    def _import_job_post(self, request, job_id, service, done):
        sheets = spreadsheets()
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = self._import_job(request, job_id)
        if not sheets.may_manage_import(job, request.user):
            # Visible (an auditor, a city colleague's read access) is not the same as in charge.
            return HttpResponseForbidden("只有提交人或市医保局可以取消或重新导入该任务", content_type="text/plain; charset=utf-8")
        try:
            target = service(job, request.user)
        except sheets.ImportRejected as exc:
            messages.error(request, exc.message)
            target = job
        else:
            messages.success(request, done)
        return redirect(reverse(f"admin:{self._url_name('import_job')}", args=[target.pk]))

    def export_view(self, request):
        sheets = spreadsheets()
        if not self.has_export_permission(request):
            raise PermissionDenied
        resource = self.spreadsheet_resource
        fmt = request.GET.get("_format", "xlsx")
        if fmt not in ("xlsx", "csv"):
            raise Http404("不支持的导出格式")
        # The changelist's own filters and search, on top of get_queryset's scope restriction.
        params = request.GET.copy()
        params.pop("_format", None)
        request.GET = params
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request)
        except (IncorrectLookupParameters, ValidationError):
            # A hand-edited or stale filter (e.g. a date that is not a date): say so, as the changelist does.
            self.message_user(request, "筛选条件无效（例如日期格式应为 2025-01-31），未导出；请重新设置筛选后再导出", messages.ERROR)
            return redirect(reverse(f"admin:{self._url_name('changelist')}"))
        stamp = timezone.localtime().strftime("%Y%m%d%H%M%S")
        name = f"{resource.name}_{stamp}.{fmt}"

        def trail(count):
            record_export(request.user, channel=ADMIN_EXPORT, resource=resource.name, title=resource.title,
                          rows=count, filters=describe_filters(params), file_name=name)

        if fmt == "csv":
            buffer = io.StringIO()
            trail(sheets.write_csv(resource, queryset, buffer))
            return _download(buffer.getvalue().encode("utf-8"), name, "text/csv; charset=utf-8")
        spool = tempfile.SpooledTemporaryFile(max_size=20 * 1024 * 1024)
        trail(sheets.write_xlsx(resource, queryset, spool))
        spool.seek(0)
        return FileResponse(spool, as_attachment=True, filename=name)


def spreadsheets():
    """The spreadsheet pipeline (SPEC §4) behind the import, template and export buttons: settlement's
    (settlement.imports.door, filled in settlement.apps)."""
    return door("spreadsheets")


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _download(content, filename, content_type=XLSX):
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f"attachment; filename=\"{filename}\""
    return response
