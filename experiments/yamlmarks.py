"""YAML text to plain data, remembering where (line, column) every dotted path was written.

Usage: `doc = load_marked(text); doc.data["spec"]; doc.mark_of(("spec", "variants", 0, "upstream"))`
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]
"""A place in the document: mapping keys and list indexes from the root, like pydantic's `loc`."""

_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_TAG + t for t in ("int", "float", "bool", "null")}
_MAX_NODES = 100_000  # a config file has hundreds; this stops alias bombs ("billion laughs")
_MAX_DEPTH = 64  # a config file nests about 6 deep


@dataclass(frozen=True, slots=True, order=True)
class Mark:
    """A position in the file, both 1-based."""

    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem found at a document path, before it is given a file position."""

    path: Path
    message: str
    key: bool = False
    """Point at the mapping key itself (unknown or duplicate keys) rather than at its value."""
    mark: Mark | None = None
    """The exact position, when the finder knows it better than the path does."""


@dataclass
class MarkedDocument:
    """Plain data (dicts, lists, scalars) with the position of every path, and problems met while reading."""

    data: object = None
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    parsed: bool = False
    """The text was well-formed YAML (`data` is what it says, even if that is null)."""

    def mark_of(self, path: Path, *, key: bool = False) -> Mark:
        """Where `path` was written; for a path that is not there (a missing key), its nearest parent."""
        if key and path in self.keys:
            return self.keys[path]
        for depth in range(len(path), -1, -1):
            mark = self.values.get(path[:depth])
            if mark is not None:
                return mark
        return Mark(1, 1)


def describe(value: object) -> str:
    """How a YAML value is shown in a message: `'abc'`, `5`, `null`, `true`, `a mapping`, `a list`."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def load_marked(text: str) -> MarkedDocument:
    """Read one YAML document; syntax errors, duplicate keys, odd tags become findings, never exceptions."""
    doc = MarkedDocument()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        doc.findings.append(_syntax_finding(exc))
        return doc
    except yaml.YAMLError as exc:  # ReaderError: a character YAML does not allow
        position = getattr(exc, "position", 0)
        doc.findings.append(Finding((), f"YAML error: {exc}", mark=_position_mark(text, position)))
        return doc
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        doc.findings.append(Finding((), "YAML error: nesting too deep", mark=Mark(1, 1)))
        return doc
    if root is None:
        doc.findings.append(Finding((), "the file is empty: expected an Experiment", mark=Mark(1, 1)))
        return doc
    doc.data = _Converter(doc).node(root, ())
    doc.parsed = True
    return doc


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _position_mark(text: str, position: int) -> Mark:
    before = text[:position]
    return Mark(before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1)


def _syntax_finding(exc: yaml.MarkedYAMLError) -> Finding:
    where = exc.problem_mark or exc.context_mark
    mark = Mark(where.line + 1, where.column + 1) if where is not None else Mark(1, 1)
    message = exc.problem or "invalid YAML"
    if exc.context:
        context_at = f" at line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
        message = f"{message} ({exc.context}{context_at})"
    return Finding((), f"YAML syntax error: {message}", mark=mark)


class _Converter:
    """Walks the composed node tree once, filling a MarkedDocument."""

    def __init__(self, doc: MarkedDocument) -> None:
        self._doc = doc
        self._scalars = yaml.SafeLoader("")  # its constructor turns int/float/bool/null scalars into values
        self._active: set[int] = set()  # nodes on the current branch: an alias to one of them is a cycle
        self._count = 0

    def _problem(self, node: Node, path: Path, message: str) -> None:
        self._doc.findings.append(Finding(path, message, mark=_mark(node)))

    def node(self, node: Node, path: Path) -> object:
        """The plain value of `node`, recording its mark (and those of everything under it) at `path`."""
        self._count += 1
        if self._count > _MAX_NODES:
            if self._count == _MAX_NODES + 1:
                self._problem(node, path, f"document too large (more than {_MAX_NODES} values)")
            return None
        self._doc.values.setdefault(path, _mark(node))
        if len(path) > _MAX_DEPTH:
            self._problem(node, path, f"nested too deep (more than {_MAX_DEPTH} levels)")
            return None
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            self._problem(node, path, "recursive YAML alias")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.node(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: Path) -> object:
        if node.tag in _PLAIN_TAGS:
            try:
                return self._scalars.construct_object(node)
            except (ValueError, yaml.YAMLError) as exc:
                self._problem(node, path, f"bad {node.tag.removeprefix(_TAG)} value {node.value!r}: {exc}")
                return node.value
        # A timestamp-looking value ("2026-11-01") stays the string that was written.
        if node.tag not in (_TAG + "str", _TAG + "timestamp"):
            self._problem(node, path, f"unsupported YAML tag {node.tag!r}")
        return node.value

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, object]:
        out: dict[str, object] = {}
        # Merge keys (`<<: *base`) first, so that keys written here override merged ones, as in YAML.
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self._merge(value_node, path, out)
        seen: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, path, "mapping keys must be plain strings")
                continue
            key, at = str(key_node.value), _mark(key_node)
            if key in seen:
                first = seen[key]
                message = f"duplicate key {key!r} (first defined at line {first.line}, column {first.col})"
                self._doc.findings.append(Finding((*path, key), message, key=True, mark=at))
            seen[key] = at
            self._doc.keys[(*path, key)] = at
            self._doc.values.pop((*path, key), None)  # a later (or overriding) value wins, with its mark
            out[key] = self.node(value_node, (*path, key))
        return out

    def _merge(self, value_node: Node, path: Path, out: dict[str, object]) -> None:
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in reversed(sources):  # in `<<: [*a, *b]`, a wins
            if not isinstance(source, MappingNode):
                self._problem(source, path, "a merge key (<<) needs a mapping or a list of mappings")
                continue
            merged = self.node(source, path)
            if isinstance(merged, dict):
                out.update(merged)
