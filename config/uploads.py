"""Refuse an upload over IMPORT_MAX_FILE_BYTES while it streams in, before any of it is kept.

Django hands every chunk of an uploaded file to the handlers of FILE_UPLOAD_HANDLERS in turn.
This one comes first, so once a file is known to be too large the memory and temporary-file
handlers behind it get nothing more of it. request.FILES then holds a RefusedUpload (no content,
`refused` set) in the file's place, rather than nothing: raising StopUpload would drop the file
and every field after it, and the form could only say the file is missing, not why.
"""
from io import BytesIO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers

# Room in a request's Content-Length for the form's other fields and the multipart headers.
FORM_OVERHEAD_BYTES = 64 * 1024


def size_text(size):
    if size >= 1024 * 1024:
        return f"{round(size / 1024 / 1024, 1):g} MB"
    if size >= 1024:
        return f"{round(size / 1024, 1):g} KB"
    return f"{size} 字节"


def too_large_message():
    return f"文件过大（上限为{size_text(settings.IMPORT_MAX_FILE_BYTES)}），未保存"


class RefusedUpload(UploadedFile):
    """Stands in request.FILES for a file over the limit; its content was never kept."""

    refused = True

    def __init__(self, field_name, name, size, content_type, charset, content_type_extra):
        super().__init__(BytesIO(), name, content_type, size, charset, content_type_extra)
        self.field_name = field_name


class SizeLimitUploadHandler(FileUploadHandler):
    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.IMPORT_MAX_FILE_BYTES
        self.request_too_large = False
        self.received = 0
        self.refused = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # Read per request, so a changed setting (or a test's) applies to the next upload.
        self.limit = settings.IMPORT_MAX_FILE_BYTES
        # A body this large cannot hold an allowed file: refuse from the first byte, keep nothing.
        # Content-Length may be missing or understated (chunked ASGI), so the bytes are counted too.
        self.request_too_large = content_length is not None and content_length > self.limit + FORM_OVERHEAD_BYTES
        return None

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0
        self.refused = self.request_too_large or (self.content_length or 0) > self.limit
        if self.refused:
            # Known too large already: the handlers behind this one do not even open a file for it.
            raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if not self.refused and self.received > self.limit:
            self.refused = True
            self._discard_what_later_handlers_kept()
        # None stops the chunk here: the handlers behind this one never see it.
        return None if self.refused else raw_data

    def file_complete(self, file_size):
        if not self.refused:
            return None  # the memory or temporary-file handler returns the file
        return RefusedUpload(
            self.field_name, self.file_name, self.received, self.content_type, self.charset, self.content_type_extra,
        )

    def _discard_what_later_handlers_kept(self):
        # The chunks before the limit went on to them; a temporary file is removed here, not at exit.
        for handler in getattr(self.request, "upload_handlers", []):
            if handler is not self:
                handler.upload_interrupted()
