"""What can go wrong with an upload: the whole file, or single rows."""
from dataclasses import dataclass


class ImportRejected(Exception):
    """The file as a whole cannot be imported; the message is shown to the user as is."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class CellError(Exception):
    """A cell value is wrong; the reason is a Chinese sentence without the row or column."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    value: str
    reason: str

    def __str__(self):
        where = f"第{self.row}行" + (f"“{self.column}”列" if self.column else "")
        shown = f"（值：{self.value}）" if self.value not in ("", None) else ""
        return f"{where}{shown}：{self.reason}"
