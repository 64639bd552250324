"""What `readerfirst check` shows about section kinds: one line per kind, or JSON for scripts."""

from __future__ import annotations

from pipeline.content.kinds import FieldSpec, SectionKinds

__all__ = ["kind_lines", "kinds_json"]


def _field_text(spec: FieldSpec) -> str:
    required = "" if spec.required else "?"
    if spec.fields:
        inner = "{" + ", ".join(f.name + ("" if f.required else "?") for f in spec.fields) + "}"
        return f"{spec.name}{required}: {'list of ' if spec.type == 'list' else ''}{inner}"
    return f"{spec.name}{required}: {spec.type}"


def kind_lines(kinds: SectionKinds) -> list[str]:
    """One line per kind: name, role when not plain, and its fields (`?` marks optional ones)."""
    lines = []
    for kind in kinds:
        role = f" [{kind.role}]" if kind.role != "section" else ""
        fields = ", ".join(_field_text(f) for f in kind.fields)
        lines.append(f"  {kind.name}{role}: {fields}")
    return lines


def kinds_json(kinds: SectionKinds) -> list[dict]:
    """Every kind with its role, description and fields (type, required, limits), for `check --json`."""
    return [kind.as_json() for kind in kinds]
