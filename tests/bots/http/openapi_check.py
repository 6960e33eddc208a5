"""A tiny JSON Schema checker for the subset parley's OpenAPI document uses.

Enough to hold every response the tests see to the published document without a new
dependency; `KNOWN` lets a test fail when the document starts using a keyword we ignore.
"""

from __future__ import annotations

from typing import Any

KNOWN = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "oneOf",
        "minLength",
        "maxLength",
        "minimum",
        "default",
        "description",
    }
)
_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "number": (int, float),
}


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref (#/components/...) to the schema it names."""
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def errors(doc: dict[str, Any], value: Any, schema: dict[str, Any], at: str = "$") -> list[str]:
    """Every way `value` breaks `schema` (empty when it conforms)."""
    schema = resolve(doc, schema)
    found: list[str] = []
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not errors(doc, value, s, at)]
        if len(matches) != 1:
            found.append(f"{at}: matches {len(matches)} of oneOf")
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is(value, name) for name in names):
            return [f"{at}: {value!r} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        found.append(f"{at}: {value!r} != {schema['const']!r}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            found.append(f"{at}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{at}: longer than {schema['maxLength']}")
    if "minimum" in schema and _is(value, "number") and value < schema["minimum"]:
        found.append(f"{at}: below {schema['minimum']}")
    if isinstance(value, dict):
        found += _object(doc, value, schema, at)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += errors(doc, item, schema["items"], f"{at}[{i}]")
    return found


def _object(
    doc: dict[str, Any], value: dict[str, Any], schema: dict[str, Any], at: str
) -> list[str]:
    found = [f"{at}: missing {key!r}" for key in schema.get("required", ()) if key not in value]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            found += errors(doc, item, properties[key], f"{at}.{key}")
        elif extra is False:
            found.append(f"{at}: unexpected {key!r}")
        elif isinstance(extra, dict):
            found += errors(doc, item, extra, f"{at}.{key}")
    return found


def _is(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name in ("number",) and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def keywords(node: Any) -> set[str]:
    """Every keyword used inside the document's schemas (to compare with KNOWN)."""
    used: set[str] = set()
    if isinstance(node, dict):
        for key, item in node.items():
            used.add(key)
            if key == "properties":
                for sub in item.values():
                    used |= keywords(sub)
            elif isinstance(item, dict | list):
                used |= keywords(item)
    elif isinstance(node, list):
        for item in node:
            used |= keywords(item)
    return used


def refs(node: Any) -> list[str]:
    """Every $ref in the document."""
    if isinstance(node, dict):
        here = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return here + [r for item in node.values() for r in refs(item)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def response_schema(
    doc: dict[str, Any], method: str, path: str, status: int, media: str = "application/json"
) -> dict[str, Any]:
    """The documented schema of one response (KeyError when it is not documented)."""
    response = doc["paths"][path][method.lower()]["responses"][str(status)]
    return dict(response["content"][media]["schema"])


def event_schema(doc: dict[str, Any], event: str) -> dict[str, Any]:
    """The documented schema of a stream event's `data`."""
    sse = doc["paths"]["/v1/chat"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    return dict(sse["x-events"][event])
