"""JSON-safe encoding of a scheme's gathered inputs, so a unit task can be re-run from stored data.

The engine stores each unit's inputs (whatever frozen dataclass the scheme's `gather` returns) in
`RunUnit.inputs` at the start of a run; every unit task, a redelivered task and `resume_run` read
them back, so a resumed run reaches exactly the figures of an uninterrupted one even if claims were
uploaded in between. The encoding is generic (tagged values) because each scheme has its own input
types; only dataclasses defined under `settlement.` may be rebuilt, never an arbitrary class.
"""
import dataclasses
import datetime
import importlib
from decimal import Decimal

_ALLOWED_PREFIX = "settlement."


def encode(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {
            "__dc__": f"{cls.__module__}:{cls.__qualname__}",
            "f": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, Decimal):
        return {"__dec__": str(value)}
    if isinstance(value, datetime.date):
        return {"__date__": value.isoformat()}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, (frozenset, set)):
        return {"__set__": [encode(v) for v in sorted(value, key=repr)]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"__map__": {k: encode(v) for k, v in value.items()}}
        return {"__pairs__": [[encode(k), encode(v)] for k, v in value.items()]}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot encode {type(value).__name__} for a unit task")


def decode(value):
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__dc__" in value:
        cls = _dataclass(value["__dc__"])
        return cls(**{k: decode(v) for k, v in value["f"].items()})
    if "__dec__" in value:
        return Decimal(value["__dec__"])
    if "__date__" in value:
        return datetime.date.fromisoformat(value["__date__"])
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__set__" in value:
        return frozenset(decode(v) for v in value["__set__"])
    if "__map__" in value:
        return {k: decode(v) for k, v in value["__map__"].items()}
    if "__pairs__" in value:
        return {decode(k): decode(v) for k, v in value["__pairs__"]}
    raise ValueError("unknown encoded value")


def _dataclass(path):
    module_name, _, qualname = path.partition(":")
    if not module_name.startswith(_ALLOWED_PREFIX):
        raise ValueError(f"refusing to rebuild {path}")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise ValueError(f"{path} is not a dataclass")
    return obj


def to_json_safe(value):
    """Plain JSON for details shown to people: Decimal → string, tuples → lists, dates → ISO."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_safe(v) for v in value]
    return value
