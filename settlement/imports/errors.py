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

    @property
    def reason_names_column(self):
        """The reason already names its column ("身份证号校验位错误"): say the column once."""
        return bool(self.column) and self.reason.startswith(self.column)

    def __str__(self):
        named = self.column and not self.reason_names_column
        where = f"第{self.row}行" + (f"“{self.column}”列" if named else "")
        shown = f"（值：{self.value}）" if self.value not in ("", None) else ""
        return f"{where}{shown}：{self.reason}"
