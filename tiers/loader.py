"""Read and validate the product team's catalog YAML, reporting every problem at once.

Three passes, each naming the file and the path inside it (`tiers[2].features.api_calls`):
YAML syntax and duplicate keys, the shape (tiers/schema.py, marshmallow), then the business
rules (tiers/checks.py). A problem that follows from an earlier one at the same place is not
reported twice.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields

from tiers.checks import CatalogIssue, did_you_mean, run_checks
from tiers.model import FORMAT_VERSION, Catalog
from tiers.schema import CatalogSchema

__all__ = [
    "CatalogInvalid",
    "CatalogIssue",
    "load_catalog_file",
    "load_catalog_text",
    "validate_catalog_text",
]

TOP = "(top level)"

_FRIENDLY = {
    "Missing data for required field.": "required field is missing",
    "Field may not be null.": "may not be empty",
    "Not a valid list.": "must be a list",
    "Not a valid mapping type.": "must be a mapping (key: value lines)",
    "Invalid input type.": "must be a mapping (key: value lines)",
    "Invalid type.": "must be a mapping (key: value lines)",
}


class CatalogInvalid(Exception):
    """The catalog file has problems; str() is one `FILE: PATH: MESSAGE` line per issue."""

    def __init__(self, filename: str, issues: list[CatalogIssue]) -> None:
        self.filename = filename
        self.issues = issues
        super().__init__("\n".join(f"{filename}: {i.path}: {i.message}" for i in issues))


def load_catalog_text(text: str, filename: str = "<catalog>") -> Catalog:
    """A validated Catalog from YAML text; CatalogInvalid listing every problem otherwise."""
    document, issues = validate_catalog_text(text)
    if issues or document is None:
        raise CatalogInvalid(filename, issues)
    return Catalog.from_document(document)


def load_catalog_file(path: str | Path) -> tuple[Catalog, str]:
    """The validated Catalog in `path` and the file's text (stored as the version's source)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise CatalogInvalid(
            str(path), [CatalogIssue(TOP, f"cannot read the file: {reason}")]
        ) from None
    return load_catalog_text(text, str(path)), text


def validate_catalog_text(text: str) -> tuple[dict[str, Any] | None, list[CatalogIssue]]:
    """(the validated document, []) or (None, every issue found), in file order."""
    parsed = _parse_yaml(text)
    if isinstance(parsed, CatalogIssue):
        return None, [parsed]
    raw, node = parsed
    if raw is None:
        return None, [CatalogIssue(TOP, "the file is empty: start with `format: 1`")]
    if not isinstance(raw, dict):
        kind = "a list" if isinstance(raw, list) else f"the value {raw!r}"
        return None, [
            CatalogIssue(
                TOP,
                f"the top level must be a mapping (format:, currencies:, tiers:, ...), not {kind}",
            )
        ]
    declared = raw.get("format")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared != FORMAT_VERSION:
        # Another format may mean other rules: judging the rest by format 1's would only confuse.
        message = f"format {declared} is not supported: this tiergate reads format {FORMAT_VERSION}"
        return None, [CatalogIssue("format", message)]
    lines: dict[str, int] = {}
    issues = _scan(node, "", lines)
    schema_issues: list[CatalogIssue] = []
    try:
        document = CatalogSchema().load(raw)
    except ValidationError as error:
        document = error.valid_data if isinstance(error.valid_data, dict) else {}
        _collect(error.messages, CatalogSchema(), "", schema_issues)
    for key, empty in (("features", {}), ("addons", []), ("promotions", []), ("offers", {})):
        if raw.get(key) is None:
            document[key] = empty
    _keep_declared_features(raw, document)
    issues += schema_issues
    broken = [i.path for i in issues]
    if any(_related("currencies", path) for path in broken):
        # With one currency unreadable, every price in it would look undeclared.
        document.pop("currencies", None)
    # A tier whose prices could not be read is not "a tier without prices" to the checks.
    unpriced = {
        str(tier.get("id"))
        for index, tier in enumerate(_list(raw.get("tiers")))
        if isinstance(tier, dict) and any(_related(f"tiers[{index}].prices", b) for b in broken)
    }
    checked = run_checks(document, unreadable_prices=unpriced)
    issues += [i for i in checked if not any(_related(i.path, b) for b in broken)]
    if issues:
        ordered = sorted(issues, key=lambda i: _line_of(i.path, lines))
        return None, [CatalogIssue(_printable(i.path), _printable(i.message)) for i in ordered]
    return document, []


def _keep_declared_features(raw: dict[Any, Any], document: dict[str, Any]) -> None:
    """A feature whose definition is broken (reported at `features.ID`) is still declared:
    keep its id, kind unknown, so that tiers granting it are not told it is unknown."""
    declared = raw.get("features")
    if not isinstance(declared, dict):
        return
    valid = document.get("features") or {}
    document["features"] = {
        fid: valid.get(fid, {}) for fid in declared if isinstance(fid, str)
    } | valid


def _printable(text: str) -> str:
    # A YAML escape can put a lone surrogate in a key or value that a message repeats; printing
    # it would crash (UnicodeEncodeError), so it is shown escaped.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


MAX_VALUES = 100_000  # the demo catalog has about 1,000; aliases must not multiply it past this


class _CatalogLoader(yaml.SafeLoader):
    """YAML 1.1's safe loader, except that an integer is written in plain decimal digits.

    YAML 1.1 reads `0500` as octal (320), `29:00` as base 60 (1740) and `0x1F` as hex: a price
    nobody wrote. Here they stay text, which the schema refuses with a hint."""


_INT = "tag:yaml.org,2002:int"
_CatalogLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _INT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CatalogLoader.add_implicit_resolver(
    _INT, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)


def _parse_yaml(text: str) -> tuple[Any, yaml.Node | None] | CatalogIssue:
    loader = _CatalogLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_VALUES:
            return CatalogIssue(
                TOP, f"the file expands to more than {MAX_VALUES:,} values (through YAML aliases)"
            )
        return (loader.construct_document(node) if node is not None else None), node
    except _SelfReference as cycle:
        line = cycle.node.start_mark.line + 1
        return CatalogIssue(
            f"line {line}",
            "YAML alias refers to the list or mapping that contains it: the catalog would be "
            "infinite",
        )
    except RecursionError:
        return CatalogIssue(TOP, "YAML syntax error: lists or mappings nested too deeply")
    except ValueError as error:  # a date like 0000-00-00, an integer of more than 4300 digits
        reason = str(error).split("; use sys.set_int_max_str_digits")[0]
        return CatalogIssue(TOP, f"YAML value that cannot be read: {reason}")
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else TOP
        problem = error.problem or error.context or "invalid YAML"
        return CatalogIssue(where, f"YAML syntax error: {problem}")
    except yaml.YAMLError as error:
        return CatalogIssue(TOP, f"YAML syntax error: {error}")
    finally:
        loader.dispose()


class _SelfReference(Exception):  # noqa: N818 - a signal inside this module, not an error type
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values `node` holds once every alias is expanded (memoized: stays linear).

    _SelfReference when an alias refers to a list or mapping it is inside of (`x: &a [*a]`)."""
    if sizes.get(id(node)) == -1:
        raise _SelfReference(node)
    if id(node) not in sizes:
        sizes[id(node)] = -1  # in progress: meeting it again below is a cycle
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


# Mappings keyed by currency: `usd` and `USD` are one currency there (loaded lower-case).
_CURRENCY_KEYED = re.compile(
    r"(?:tiers|addons)\[\d+\]\.prices\.[^.\[]+|promotions\[\d+\]\.amount_off"
)


def _scan(node: yaml.Node | None, path: str, lines: dict[str, int]) -> list[CatalogIssue]:
    """Record each path's line and report duplicate mapping keys (YAML keeps only the last)."""
    if node is None:
        return []
    lines.setdefault(path, node.start_mark.line + 1)
    issues: list[CatalogIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        currencies: dict[str, tuple[str, int]] = {}
        currency_keyed = _CURRENCY_KEYED.fullmatch(path) is not None
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = _join(path, key)
            line = key_node.start_mark.line + 1
            if key in seen:
                issues.append(
                    CatalogIssue(
                        child,
                        f"duplicate key '{key}' (line {line}; first on line {seen[key]}): "
                        "YAML would silently keep only the last one",
                    )
                )
                continue
            if currency_keyed and key.lower() in currencies:
                first, first_line = currencies[key.lower()]
                issues.append(
                    CatalogIssue(
                        child,
                        f"currency '{key.lower()}' written twice ('{key}' on line {line}, "
                        f"'{first}' on line {first_line}): currencies ignore letter case, so one "
                        "would silently replace the other",
                    )
                )
                continue
            seen[key] = line
            currencies[key.lower()] = (key, line)
            lines[child] = line
            issues += _scan(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            issues += _scan(item, f"{path}[{index}]", lines)
    return issues


def _collect(messages: Any, node: Any, path: str, out: list[CatalogIssue]) -> None:
    """Flatten marshmallow's nested error messages into issues, walking the schema alongside
    so an unknown key gets a suggestion from the fields allowed at that level."""
    if isinstance(messages, list | tuple):
        for message in messages:
            if isinstance(message, dict | list):
                _collect(message, node, path, out)
            else:
                out.append(CatalogIssue(path or TOP, _FRIENDLY.get(str(message), str(message))))
        return
    if not isinstance(messages, dict):
        out.append(CatalogIssue(path or TOP, str(messages)))
        return
    for key, sub in messages.items():
        if isinstance(node, Schema):
            if key == "_schema":
                _collect(sub, None, path, out)
                continue
            field = node.fields.get(key)
            if field is None:
                out.append(
                    CatalogIssue(
                        _join(path, str(key)),
                        f"unknown field '{key}'" + did_you_mean(str(key), node.fields),
                    )
                )
                continue
            _collect(sub, _inner(field), _join(path, str(key)), out)
        elif isinstance(node, fields.List):
            _collect(sub, _inner(node.inner), f"{path}[{key}]", out)
        elif (
            isinstance(node, fields.Dict) and isinstance(sub, dict) and {"key", "value"} >= set(sub)
        ):
            child = _join(path, str(key))
            if "key" in sub:
                _collect(sub["key"], None, child, out)
            if "value" in sub:
                _collect(sub["value"], _inner(node.value_field), child, out)
        else:
            child = f"{path}[{key}]" if isinstance(key, int) else _join(path, str(key))
            _collect(sub, None, child, out)


def _inner(field: Any) -> Any:
    return field.schema if isinstance(field, fields.Nested) else field


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _related(path: str, broken: str) -> bool:
    """True when one path lies inside the other (or they are the same)."""
    if path == broken:
        return True
    shorter, longer = sorted((path, broken), key=len)
    return longer.startswith(shorter + ".") or longer.startswith(shorter + "[")


def _line_of(path: str, lines: dict[str, int]) -> int:
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return 0
