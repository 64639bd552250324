"""YAML read with the line of every value kept, so that errors can point at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["LinedYaml", "read_lined_yaml"]


class LinedYaml:
    """Plain data from a YAML file plus the 1-based line where each path starts."""

    def __init__(self, data: Any, lines: dict[tuple, int]):
        self.data = data
        self._lines = lines

    def line(self, *path: str | int) -> int:
        """The line of `path`, or of its nearest parent that has one."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get((), 1)


def _construct(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(key_node, yaml.ScalarNode) else key_node.value
            result[key] = _construct(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines) for i, item in enumerate(node.value)]
    # Scalars: let SafeLoader resolve types (dates, numbers, booleans) exactly as yaml.safe_load would.
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def read_lined_yaml(path: Path, text: str | None = None) -> LinedYaml:
    """Parse `path` (or `text`, naming `path`), keeping line numbers; raises yaml.YAMLError."""
    source = path.read_text(encoding="utf-8") if text is None else text
    node = yaml.compose(source, Loader=yaml.SafeLoader)
    lines: dict[tuple, int] = {}
    if node is None:
        return LinedYaml(None, {(): 1})
    return LinedYaml(_construct(node, (), lines), lines)
