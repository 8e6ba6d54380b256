"""A check of a JSON document's shape against a protobuf message, before protobuf's own
JSON parser reads it: that parser takes a string or a list given for a message field as
an object whose keys are unknown fields, which ``ignore_unknown_fields`` then drops (so
``"scope": "AAA"`` would pass as an empty scope). Here every message-typed field that is
set must be an object, or a list of objects if repeated."""
from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor

# Messages with a JSON form of their own (e.g. Struct, Timestamp): not objects of fields.
_OWN_JSON_FORM = "google.protobuf."


def check_shapes(value: Any, message: Descriptor, path: str = "body") -> None:
    """A ``ValueError`` naming the first field of ``message`` that is not of its shape."""
    if not isinstance(value, dict):
        raise ValueError(f"{path} must be an object, not {type(value).__name__}")
    for field in message.fields:
        kind = field.message_type
        if kind is None or kind.full_name.startswith(_OWN_JSON_FORM) or \
                kind.GetOptions().map_entry:  # a map is an object of its own keys
            continue
        for name in {field.json_name, field.name}:
            given = value.get(name)
            if given is None:  # unset (null is how protobuf's JSON mapping says so)
                continue
            where = f"{path}.{name}"
            if not field.is_repeated:
                check_shapes(given, kind, where)
            elif not isinstance(given, list):
                raise ValueError(f"{where} must be a list, not {type(given).__name__}")
            else:
                for i, item in enumerate(given):
                    check_shapes(item, kind, f"{where}[{i}]")
