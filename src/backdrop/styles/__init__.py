"""The style library: per category, named background styles with an SD prompt template.

A style carries a prompt template filled from the product's fields (``{title}``, ``{color}``,
``{material}``, ``{brand}``, ``{category}``, any attribute by lower-case name...), a negative
prompt, the parameters of the procedural renderer, and what it suits: a packshot, a product worn
by a person (``on-model``), or both; on-model products get only the styles that suit them, and a
prompt that does not negate people. A retailer's category reaches the library's categories by
path, Google product category, keywords and synonyms (:mod:`backdrop.styles.categories`), else
``default``.

YAML layout::

    version: 1
    negative_prompt: "..."            # shared default
    styles:                           # reusable styles, referenced by name
      studio-sweep: {prompt: "...", suits: both, procedural: {...}}
    categories:
      default: [studio-sweep, ...]
      "Apparel > Sneakers":           # a category path: a list of styles ...
        - studio-sweep                            # a shared style as is
        - {name: street, base: concrete-floor, prompt: "..."}   # derived: overrides the base's fields
      Outerwear:                      # ... or styles with the words that lead to it
        keywords: [jacket, coat, parka]
        google: ["Apparel & Accessories > Clothing > Outerwear"]
        styles: [urban-concrete, studio-sweep]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError
from ..text import clean_text, split_path
from .categories import Keyword, best_keyword, taxonomy_path, tokens
from .params import validate_params

DEFAULT_LIBRARY_FILE = Path(__file__).resolve().parent / "library.yaml"
_NAME = r"^[a-z0-9][a-z0-9_-]*$"
Suits = Literal["packshot", "on-model", "both"]

#: negative-prompt terms that would forbid the person wearing an on-model product
PERSON_TERMS = frozenset(
    {"people", "person", "persons", "human", "humans", "hands", "hand", "face", "faces", "man", "woman", "model", "body", "skin"}
)
#: ... and that would fight the photo's own crop of a frame-cropped product
CROP_TERMS = frozenset({"cropped", "cut off", "out of frame"})


#: what a style's set looks like, in words a render can be measured against (see tests/test_scene_looks.py):
#: the backdrop's colour temperature, chroma and lightness
ToneWord = Literal["warm", "cool", "neutral", "dark", "light", "vivid"]
#: the material a style's floor (or, without a floor, its backdrop) shows
SurfaceWord = Literal["plain", "paper", "wood", "marble", "concrete", "linen", "terrazzo"]
WallWord = Literal["plain", "plaster", "concrete", "paper", "linen", "wood"]
_MONTH_DAY = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


class Look(BaseModel):
    """What a style promises to look like: held to it by a test that renders it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: words for the backdrop's colour: warm / cool (hue), neutral (low chroma), vivid (high), dark / light
    tone: tuple[ToneWord, ...] = ()
    #: the floor's material (plain: smooth, no fine texture)
    surface: SurfaceWord = "plain"
    #: the wall's texture, where it is meant to show
    wall: WallWord = "plain"


class Season(BaseModel):
    """A yearly date window (month-day, both ends included); ``end`` before ``start`` wraps the year end.

    >>> Season(start="11-15", end="01-06").contains(dt.date(2026, 1, 2))
    True
    >>> Season(start="11-15", end="01-06").contains(dt.date(2026, 7, 1))
    False
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field(pattern=_MONTH_DAY)
    end: str = Field(pattern=_MONTH_DAY)

    def contains(self, day: dt.date) -> bool:
        md = f"{day.month:02d}-{day.day:02d}"
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


class Style(BaseModel):
    """A named background style."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    description: str = ""
    prompt: str
    #: the prompt for a product worn by a person (default: ``prompt``)
    on_model_prompt: str = ""
    negative_prompt: str = ""
    #: what the scene suits: a packshot (a tabletop), a person standing (on-model), or both
    suits: Suits = "both"
    procedural: dict[str, Any] = Field(default_factory=dict)
    #: what the set looks like (tone, surface, wall): a promise the renders are tested against
    look: Look | None = None
    #: when the style is in the rotation (none: all year)
    season: Season | None = None

    def suits_subject(self, on_model: bool) -> bool:
        return self.suits == "both" or self.suits == ("on-model" if on_model else "packshot")

    def in_season(self, day: dt.date | None = None) -> bool:
        """Whether the style is in the rotation on ``day`` (default: today)."""
        return self.season is None or self.season.contains(day or dt.date.today())

    def prompt_for(self, fields: dict[str, str], on_model: bool = False) -> str:
        return fill_template(self.on_model_prompt if on_model and self.on_model_prompt else self.prompt, fields)

    def negative_for(self, fields: dict[str, str], on_model: bool = False, cropped: bool = False) -> str:
        """The negative prompt; an on-model product keeps its person (no "people", "hands"...), a
        product its photo crops keeps its crop (no "cropped")."""
        text = fill_template(self.negative_prompt, fields)
        drop = (PERSON_TERMS if on_model else frozenset()) | (CROP_TERMS if cropped else frozenset())
        if drop:
            terms = [t.strip() for t in text.split(",")]
            text = ", ".join(t for t in terms if t and t.lower() not in drop)
        return text

    def spec(self) -> dict:
        """What renders it: everything but its season (when it is shown does not change how it looks)."""
        return self.model_dump(exclude={"season"})

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
    on_model_prompt: str | None = None
    negative_prompt: str | None = None
    suits: Suits | None = None
    procedural: dict[str, Any] | None = None
    look: Look | None = None
    season: Season | None = None


class _CategoryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    styles: list[str | _StyleEntry] = Field(min_length=1)
    #: words and synonyms in a retailer's category path (or product_type) that lead here
    keywords: list[str] = Field(default_factory=list)
    #: Google product taxonomy paths whose products come here (a path covers its subcategories)
    google: list[str] = Field(default_factory=list)


class _LibraryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    negative_prompt: str = ""
    styles: dict[str, _StyleEntry | dict] = Field(default_factory=dict)
    categories: dict[str, list[str | _StyleEntry] | _CategoryEntry]


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


_FORMATTER = string.Formatter()


def template_fields(template: str) -> set[str]:
    return {f for _, f, _, _ in _FORMATTER.parse(template) if f}


# a/an by sound, not letter: "an hour", "a unicorn", "an LED", "an 8-pack"
_AN_EXCEPTIONS = ("hour", "honest", "honor", "honour", "heir")
_A_EXCEPTIONS = ("uni", "use", "usu", "uti", "ure", "eu", "one", "once", "ubi", "uk")


def _wants_an(word: str) -> bool:
    w = word.lower()
    if not w:
        return False
    if w[0].isdigit():
        return bool(re.match(r"(8|11|18)(\D|$)|8\d", w))
    if word.isupper() and 1 < len(word) <= 5:  # read letter by letter
        return word[0] in "AEFHILMNORSX"
    if w.startswith(_AN_EXCEPTIONS):
        return True
    if w.startswith(_A_EXCEPTIONS):
        return False
    return w[0] in "aeiou"


def fix_articles(text: str) -> str:
    """Make every "a"/"an" agree with the word after it.

    >>> fix_articles("product photo of a Aim Analog Watch, an black bag")
    'product photo of an Aim Analog Watch, a black bag'
    """

    def repl(m: re.Match) -> str:
        art, gap, word = m.group(1), m.group(2), m.group(3)
        before = text[: m.start()].rstrip()
        if art[0].isupper() and before and before[-1] not in ".!?:":
            return m.group(0)  # "Vitamin A energy drink": a letter, not an article
        want = "an" if _wants_an(word) else "a"
        return f"{want.capitalize() if art[0].isupper() else want}{gap}{word}"

    return re.sub(r"\b([Aa]n?)(\s+[\"'(]?)([\w-]+)", repl, text)


def fill_template(template: str, fields: dict[str, str]) -> str:
    """Fill ``{field}`` placeholders; missing fields become empty and the punctuation around them is
    tidied; entities decoded, trademark signs dropped (noise to a text encoder), articles agreed."""
    values = {k: re.sub(r"\s*[™®©]\s*", " ", clean_text(v)).strip() for k, v in fields.items() if v is not None}
    text = template.format_map(_Blank(values))
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.;:])", r"\1", text)
    text = re.sub(r"([,;:])(\s*[,;:])+", r"\1", text)
    text = re.sub(r"\(\s*\)", "", text)
    return fix_articles(text.strip(" ,;:"))


def _norm(category: str) -> str:
    return " > ".join(p.lower() for p in split_path(category))


@dataclass(frozen=True)
class CategoryMatch:
    """The library category a product's styles come from, and the rule that led there."""

    category: str
    #: "path", "google", "keyword" or "default"
    rule: str
    #: what matched, in words (``keyword "jacket" in "Jackets"``)
    why: str
    styles: tuple[Style, ...]

    @property
    def is_default(self) -> bool:
        return self.rule == "default"

    def to_dict(self) -> dict:
        return {"category": self.category, "rule": self.rule, "why": self.why, "styles": [s.name for s in self.styles]}


class StyleLibrary:
    """Styles per category; a product's category reaches them by path, Google category, keyword, else ``default``."""

    def __init__(
        self,
        categories: dict[str, list[Style]],
        source: str = "<memory>",
        keywords: dict[str, list[str]] | None = None,
        google: dict[str, list[str]] | None = None,
    ):
        if "default" not in categories or not categories["default"]:
            raise ConfigError(f"{source}: categories.default must list at least one style")
        self.source = source
        self._names = {_norm(k): k for k in categories}
        self._by_category = {_norm(k): tuple(v) for k, v in categories.items()}
        self._keywords: list[Keyword] = []
        for name, words in (keywords or {}).items():
            for w in [name, *words]:
                ws = tuple(tokens(w))
                if ws:
                    self._keywords.append(Keyword(ws, _norm(name), len(self._keywords), w))
        self._google = sorted(
            ((_norm(g), _norm(name)) for name, paths in (google or {}).items() for g in paths),
            key=lambda kv: -len(kv[0]),
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> StyleLibrary:
        path = Path(path) if path else DEFAULT_LIBRARY_FILE
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as e:
            raise ConfigError(f"{path}: cannot read style library: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from e
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<memory>") -> StyleLibrary:
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
        keywords: dict[str, list[str]] = {}
        google: dict[str, list[str]] = {}
        for cat, spec in lib.categories.items():
            entries = spec.styles if isinstance(spec, _CategoryEntry) else spec
            if isinstance(spec, _CategoryEntry):
                keywords[cat] = spec.keywords
                google[cat] = spec.google
            where_cat = f"{source}: categories.{cat}" + (".styles" if isinstance(spec, _CategoryEntry) else "")
            styles: list[Style] = []
            for i, item in enumerate(entries):
                where = f"{where_cat}[{i}]"
                if isinstance(item, str):
                    if item not in shared:
                        raise ConfigError(f"{where}: unknown style '{item}'")
                    styles.append(shared[item])
                    continue
                data = item.model_dump(exclude_none=True)
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
        return cls(categories, source=source, keywords=keywords, google=google)

    # -- a product's category -> styles ------------------------------------------------------

    def _result(self, key: str, rule: str, why: str) -> CategoryMatch:
        return CategoryMatch(self._names[key], rule, why, self._by_category[key])

    def _by_path(self, parts: tuple[str, ...]) -> CategoryMatch | None:
        for n in range(len(parts), 0, -1):
            key = " > ".join(parts[:n])
            if key in self._by_category:
                return self._result(key, "path", f'the library names "{self._names[key]}"')
        if parts and parts[-1] in self._by_category:
            return self._result(parts[-1], "path", f'the library names the leaf "{self._names[parts[-1]]}"')
        return None

    def _by_keyword(self, parts: tuple[str, ...], what: str) -> CategoryMatch | None:
        for part in reversed(parts):  # the leaf is the most specific
            k = best_keyword(part, self._keywords)
            if k is not None:
                return self._result(k.category, "keyword", f'keyword "{k.text}" in {what} "{part}"')
        return None

    def match(
        self,
        category_path: tuple[str, ...] | str,
        *,
        google_category: str = "",
        product_type: str = "",
    ) -> CategoryMatch:
        """The library category (and its styles) for a product; see :mod:`backdrop.styles.categories`."""
        shown = (
            tuple(p.strip() for p in category_path if p and p.strip()) if isinstance(category_path, tuple) else split_path(category_path)
        )
        parts = tuple(p.lower() for p in shown)
        found = self._by_path(parts)
        if found is not None:
            return found
        gpath = taxonomy_path(google_category) if google_category else None
        if gpath is None and google_category and not google_category.strip().isdigit():
            gpath = " > ".join(split_path(google_category, ">"))  # a path off the taxonomy's
        if gpath:
            g = _norm(gpath)
            for prefix, key in self._google:
                if g == prefix or g.startswith(prefix + " > "):
                    return self._result(key, "google", f'google_product_category "{gpath}" is under "{prefix}"')
            found = self._by_keyword(tuple(gpath.split(" > ")), "google_product_category")
            if found is not None:
                return CategoryMatch(found.category, "google", found.why, found.styles)
        found = self._by_keyword(shown, "category")
        if found is None and product_type:
            found = self._by_keyword(split_path(product_type), "product_type")
        if found is not None:
            return found
        why = "no rule matched"
        if google_category and gpath is None:
            why += f' (google_product_category "{google_category}" is not in the taxonomy)'
        return self._result("default", "default", why)

    def for_category(self, category_path: tuple[str, ...] | str, on: dt.date | None = None) -> list[Style]:
        """The styles of a category path (see :meth:`match`); with ``on``, only those in season that day."""
        styles = self.match(category_path).styles
        return [s for s in styles if s.in_season(on)] if on is not None else list(styles)

    def categories(self) -> list[str]:
        """The library's category names, as written in the file."""
        return sorted(self._names.values(), key=str.lower)

    def keywords(self, category: str) -> list[str]:
        key = _norm(category)
        return [k.text for k in self._keywords if k.category == key and _norm(k.text) != key]

    def google_paths(self, category: str) -> list[str]:
        key = _norm(category)
        return [p for p, k in self._google if k == key]

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
    for template in (style.prompt, style.on_model_prompt, style.negative_prompt):
        try:
            fill_template(template, {})
        except (ValueError, IndexError) as e:
            raise ConfigError(f"{where}: bad prompt template {template!r}: {e}") from e
    try:
        validate_params(style.procedural)
    except ValueError as e:
        raise ConfigError(f"{where}: procedural: {e}") from e
    return style
