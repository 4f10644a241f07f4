"""The style library: per category, named background styles with an SD prompt template.

A style carries a prompt template filled from the product's fields (``{title}``, ``{color}``,
``{material}``, ``{brand}``, ``{category}``, any attribute by lower-case name...), a negative
prompt, and the parameters of the procedural renderer. Categories fall back to their parent
category, then to ``default``.

YAML layout::

    version: 1
    negative_prompt: "..."            # shared default
    styles:                           # reusable styles, referenced by name
      studio-sweep: {prompt: "...", procedural: {...}}
    categories:
      default: [studio-sweep, ...]
      "Apparel > Sneakers":
        - studio-sweep                            # a shared style as is
        - {name: street, base: concrete-floor, prompt: "..."}   # derived: overrides the base's fields
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError

DEFAULT_LIBRARY_FILE = Path(__file__).resolve().parent / "library.yaml"
_NAME = r"^[a-z0-9][a-z0-9_-]*$"


class Style(BaseModel):
    """A named background style."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    description: str = ""
    prompt: str
    negative_prompt: str = ""
    procedural: dict[str, Any] = Field(default_factory=dict)

    def prompt_for(self, fields: dict[str, str]) -> str:
        return fill_template(self.prompt, fields)

    def negative_for(self, fields: dict[str, str]) -> str:
        return fill_template(self.negative_prompt, fields)

    def spec(self) -> dict:
        return self.model_dump()

    def digest(self) -> str:
        """Short content hash: changes whenever anything that affects rendering changes."""
        blob = json.dumps(self.spec(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class _StyleEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME)
    base: str | None = None
    description: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    procedural: dict[str, Any] | None = None


class _LibraryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    negative_prompt: str = ""
    styles: dict[str, _StyleEntry | dict] = Field(default_factory=dict)
    categories: dict[str, list[str | _StyleEntry]]


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


_FORMATTER = string.Formatter()


def template_fields(template: str) -> set[str]:
    return {f for _, f, _, _ in _FORMATTER.parse(template) if f}


def fill_template(template: str, fields: dict[str, str]) -> str:
    """Fill ``{field}`` placeholders; missing fields become empty and the punctuation around them is tidied."""
    text = template.format_map(_Blank({k: v for k, v in fields.items() if v is not None}))
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;:])", r"\1", text)
    text = re.sub(r"([,;:])(\s*[,;:])+", r"\1", text)
    text = re.sub(r"\(\s*\)", "", text)
    return text.strip(" ,;:")


def _norm(category: str) -> str:
    return " > ".join(p.strip().lower() for p in re.split(r"\s*(?:>|/|›)\s*", category) if p.strip())


class StyleLibrary:
    """Styles per category with fallback: full path, parent paths, leaf name, then ``default``."""

    def __init__(self, categories: dict[str, list[Style]], source: str = "<memory>"):
        if "default" not in categories or not categories["default"]:
            raise ConfigError(f"{source}: categories.default must list at least one style")
        self.source = source
        self._by_category = {_norm(k): v for k, v in categories.items()}

    @classmethod
    def load(cls, path: str | Path | None = None) -> "StyleLibrary":
        path = Path(path) if path else DEFAULT_LIBRARY_FILE
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as e:
            raise ConfigError(f"{path}: cannot read style library: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from e
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<memory>") -> "StyleLibrary":
        try:
            lib = _LibraryFile.model_validate(raw)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise ConfigError(f"{source}: {loc}: {first['msg']}") from e

        shared: dict[str, Style] = {}
        for name, entry in lib.styles.items():
            data = entry.model_dump(exclude_none=True) if isinstance(entry, _StyleEntry) else dict(entry)
            data.setdefault("name", name)
            data.setdefault("negative_prompt", lib.negative_prompt)
            if "base" in data:
                raise ConfigError(f"{source}: styles.{name}: shared styles cannot have a base")
            shared[name] = _make_style(data, f"{source}: styles.{name}")

        categories: dict[str, list[Style]] = {}
        for cat, entries in lib.categories.items():
            styles: list[Style] = []
            for i, entry in enumerate(entries):
                where = f"{source}: categories.{cat}[{i}]"
                if isinstance(entry, str):
                    if entry not in shared:
                        raise ConfigError(f"{where}: unknown style '{entry}'")
                    styles.append(shared[entry])
                    continue
                data = entry.model_dump(exclude_none=True)
                base_name = data.pop("base", None)
                if base_name is not None:
                    if base_name not in shared:
                        raise ConfigError(f"{where}: unknown base style '{base_name}'")
                    merged = shared[base_name].model_dump()
                    procedural = {**merged["procedural"], **data.pop("procedural", {})}
                    merged.update(data)
                    merged["procedural"] = procedural
                    data = merged
                data.setdefault("negative_prompt", lib.negative_prompt)
                styles.append(_make_style(data, where))
            names = [s.name for s in styles]
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ConfigError(f"{source}: categories.{cat}: duplicate style name(s) {', '.join(sorted(dup))}")
            categories[cat] = styles
        return cls(categories, source=source)

    def for_category(self, category_path: tuple[str, ...] | str) -> list[Style]:
        """The styles of a category: its own, else its nearest ancestor's, else its leaf name's, else the default."""
        parts = category_path if isinstance(category_path, tuple) else tuple(_norm(category_path).split(" > "))
        parts = tuple(p.strip().lower() for p in parts)
        for n in range(len(parts), 0, -1):
            key = " > ".join(parts[:n])
            if key in self._by_category:
                return self._by_category[key]
        if parts and parts[-1] in self._by_category:
            return self._by_category[parts[-1]]
        return self._by_category["default"]

    def categories(self) -> list[str]:
        return sorted(self._by_category)

    def all_styles(self) -> dict[str, Style]:
        """Every distinct style by name (the first definition of a name wins)."""
        out: dict[str, Style] = {}
        for styles in self._by_category.values():
            for s in styles:
                out.setdefault(s.name, s)
        return out


def _make_style(data: dict, where: str) -> Style:
    try:
        style = Style.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{where}: {loc}: {first['msg']}") from e
    for template in (style.prompt, style.negative_prompt):
        try:
            fill_template(template, {})
        except (ValueError, IndexError) as e:
            raise ConfigError(f"{where}: bad prompt template {template!r}: {e}") from e
    from ..generators.procedural import validate_params

    try:
        validate_params(style.procedural)
    except ValueError as e:
        raise ConfigError(f"{where}: procedural: {e}") from e
    return style
