"""403 and 404 pages (and the CSRF refusal) that say why, in Chinese, and lead back.

Django's own handlers render 403.html/404.html with `exception`, but that is whatever the exception
carried: our PermissionDenied/Http404 messages are Chinese and meant for the user, Django's are
English ("No … matches the given query.", "Resolver404", "The requested admin page does not
exist.") and say nothing to a clerk. These handlers pass only a Chinese message as `reason`, and,
for a logged-in staff user, the admin site's context, so the page keeps the portal's header,
sidebar and greeting. 400 and 500 keep Django's handlers: their templates need no context at all.
"""
import re

from django.contrib import admin
from django.http import HttpResponseForbidden, HttpResponseNotFound
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.template import loader
from django.views.decorators.csrf import requires_csrf_token

_CHINESE = re.compile(r"[\u3400-\u9fff]")
ADMIN_BASE = "admin/base_site.html"


def user_reason(exception):
    """The exception's message if it was written for the user (contains Chinese), else ""."""
    args = getattr(exception, "args", ())
    message = args[0] if args else ""
    return message if isinstance(message, str) and _CHINESE.search(message) else ""


def _context(request, exception):
    context = {}
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        # Only for someone the admin admits: each_context lists their apps and greets them.
        context.update(admin.site.each_context(request))
        context["error_base"] = ADMIN_BASE
    context["reason"] = user_reason(exception)
    return context


@requires_csrf_token  # the admin header's logout form needs a token even when the view never ran
def permission_denied(request, exception):
    body = loader.get_template("403.html").render(_context(request, exception), request)
    return HttpResponseForbidden(body)


@requires_csrf_token
def page_not_found(request, exception):
    body = loader.get_template("404.html").render(_context(request, exception), request)
    return HttpResponseNotFound(body)


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: Django's view gives its own 403_csrf.html no reason; say which case this is.

    Rendered without the request: a refused POST (often the login form) should not touch the session
    or the database to explain itself. Django logs the technical reason (django.security.csrf).
    """
    body = loader.get_template("403_csrf.html").render({"no_cookie": reason == REASON_NO_CSRF_COOKIE})
    return HttpResponseForbidden(body)
