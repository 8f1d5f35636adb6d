"""The base of request bodies: booleans and numbers only as JSON booleans and numbers.

Pydantic's lax mode reads ``"yes"``, ``"1"`` and ``1`` as ``True`` and ``"1000"``
or ``true`` as an integer; for a request body that turns a client's mistake
(or a probe) into a change nobody asked for: ``{"public": "yes"}`` publishing
an episode. Every ``bool``, ``int`` and ``float`` of a :class:`StrictModel`
(nested in lists, optionals and other models included) is strict, so those
are 422 problems. Strict in the JSON sense only: an ``int`` is welcome where
a ``float`` is asked for, and UUIDs, datetimes and URLs still arrive as
strings (a model-wide ``strict=True`` would refuse them, since FastAPI
validates the parsed body in Python mode).

Request bodies only: query and path parameters arrive as strings and are
declared as plain function parameters, and response and event models stay
lax, being built from typed values.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema

_STRICT_TYPES = frozenset({"bool", "int", "float"})


def _harden(schema: Any, owner: type[BaseModel]) -> None:
    if isinstance(schema, dict):
        # Also a mapping of field names, where "type" may be a field's name.
        kind = schema.get("type")
        if kind == "model":
            cls = schema.get("cls")
            # Another model's schema is its own: a lax one nested here stays lax.
            if cls is not owner and not (isinstance(cls, type) and issubclass(cls, StrictModel)):
                return
        elif isinstance(kind, str) and kind in _STRICT_TYPES:
            schema["strict"] = True
        for value in schema.values():
            _harden(value, owner)
    elif isinstance(schema, list):
        for value in schema:
            _harden(value, owner)


class StrictModel(BaseModel):
    """A model whose booleans and numbers accept only JSON booleans and numbers."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[BaseModel], handler: GetCoreSchemaHandler, /
    ) -> CoreSchema:
        schema = handler(source)
        _harden(schema, cls)
        return schema


class RequestModel(StrictModel):
    """A request body: camelCase on the wire, unknown fields refused, strict scalars."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")
