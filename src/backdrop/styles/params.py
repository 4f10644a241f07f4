"""The procedural renderer's parameters: the schema a style's ``procedural`` mapping is validated
against. Pydantic only (no OpenCV, no renderer), so loading a style library imports just this.

>>> validate_params({"scene": "tabletop", "surface": "marble"}).surface
'marble'
>>> validate_params({"scene": "moon"})
Traceback (most recent call last):
...
ValueError: scene: Input should be 'sweep', 'gradient', 'tabletop', 'room', 'spotlight' or 'bokeh' (got 'moon')
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SceneKind = Literal["sweep", "gradient", "tabletop", "room", "spotlight", "bokeh"]
Surface = Literal["plain", "paper", "wood", "marble", "concrete", "linen", "terrazzo"]
WallKind = Literal["plain", "plaster", "concrete", "paper", "linen", "wood"]
PaletteMode = Literal["complementary", "analogous", "monochrome", "neutral", "explicit"]
BokehColor = Literal["light", "palette", "warm", "festive"]
SunPattern = Literal["window", "blinds", "leaves", "palm"]
Podium = Literal["none", "cylinder", "cube", "discs", "steps"]
PodiumSurface = Literal["plain", "marble", "concrete"]
ToneSource = Literal["wall", "accent", "floor"]
BackdropShape = Literal["none", "arch", "circle", "split"]
HexColor = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]

SCENES: tuple[str, ...] = SceneKind.__args__  # type: ignore[attr-defined]
SURFACES: tuple[str, ...] = Surface.__args__  # type: ignore[attr-defined]
FLOOR_SCENES = frozenset({"sweep", "tabletop", "room", "spotlight", "bokeh"})


class ProceduralParams(BaseModel):
    """What a style sets for the procedural renderer. Every field has a sensible default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the set: seamless studio sweep, colour gradient, tabletop (surface + defocused wall),
    #: room (wall + floor), spotlight (dark set, pool of light), bokeh (light field behind a glossy floor)
    scene: SceneKind = "sweep"
    #: floor / table top material
    surface: Surface = "plain"
    #: back wall texture (tabletop, room, spotlight)
    wall: WallKind = "plain"
    #: how the colours are chosen from the product's dominant colours
    palette: PaletteMode = "neutral"
    #: explicit colours (palette: explicit): backdrop, then optional floor (a gradient's top colour)
    #: and accent
    colors: list[HexColor] = Field(default_factory=list, max_length=3)
    #: keep the set warm (hues 25-100) or cool (185-270) whatever the product's colours; auto: the
    #: palette decides (a neutral one is warm next to cool products, cool next to warm ones)
    temperature: Literal["auto", "warm", "cool"] = "auto"
    #: rotate the harmonised hue (degrees)
    hue_shift: float = Field(default=0.0, ge=-180.0, le=180.0)
    #: colourfulness of the set (0 grey .. 1 vivid)
    saturation: float = Field(default=0.35, ge=0.0, le=1.0)
    #: backdrop lightness (OKLab L, 0 black .. 1 white)
    lightness: float = Field(default=0.86, ge=0.05, le=0.98)
    #: floor lightness relative to the backdrop
    floor_lightness: float = Field(default=0.03, ge=-0.5, le=0.5)
    #: minimum lightness difference between the backdrop and the product
    min_contrast: float = Field(default=0.16, ge=0.0, le=0.5)
    #: natural materials (wood, marble, concrete, terrazzo): 0 natural colour .. 1 palette colour
    surface_tint: float = Field(default=0.25, ge=0.0, le=1.0)
    #: texture contrast (surfaces and walls)
    texture: float = Field(default=0.5, ge=0.0, le=1.0)
    #: texture feature size (1 = natural size at the product)
    texture_scale: float = Field(default=1.0, ge=0.25, le=4.0)
    #: backdrop defocus (depth of field)
    blur: float = Field(default=0.3, ge=0.0, le=1.0)
    #: key light horizontal position (-1 left .. 1 right)
    light_x: float = Field(default=-0.35, ge=-1.0, le=1.0)
    #: key light strength (light pool, falloff)
    light_strength: float = Field(default=0.5, ge=0.0, le=1.0)
    #: light colour (-1 cool .. 1 warm)
    light_warmth: float = Field(default=0.2, ge=-1.0, le=1.0)
    #: darkening towards the corners
    vignette: float = Field(default=0.25, ge=0.0, le=1.0)
    #: out-of-focus light spots (amount)
    bokeh: float = Field(default=0.0, ge=0.0, le=1.0)
    #: bokeh disc size multiplier
    bokeh_size: float = Field(default=1.0, ge=0.25, le=3.0)
    bokeh_color: BokehColor = "light"
    #: sunlight falling through a window / blinds / leaves (amount)
    sun: float = Field(default=0.0, ge=0.0, le=1.0)
    sun_pattern: SunPattern = "window"
    #: a podium / plinth the product stands on (staged scenes), drawn in perspective under the key light
    podium: Podium = "none"
    #: its width, in product widths, and its height, as a share of the canvas height (the product
    #: is laid out that much higher so the podium stands on the floor below it)
    podium_width: float = Field(default=1.5, ge=0.8, le=3.0)
    podium_height: float = Field(default=0.14, ge=0.03, le=0.3)
    podium_color: ToneSource = "wall"
    #: its lightness relative to that colour (-0.4 darker .. 0.4 lighter)
    podium_lightness: float = Field(default=0.06, ge=-0.4, le=0.4)
    podium_surface: PodiumSurface = "plain"
    #: colour blocking on the wall behind the product: an arch, a disc, or a two-tone split
    backdrop_shape: BackdropShape = "none"
    shape_color: ToneSource = "accent"
    shape_lightness: float = Field(default=0.0, ge=-0.4, le=0.4)
    #: shaded spheres standing on the floor beside the product or its podium (0-3)
    props: int = Field(default=0, ge=0, le=3)
    #: glossy floor reflection of the product (opacity)
    reflection: float = Field(default=0.0, ge=0.0, le=1.0)
    #: contact + ambient shadow opacity
    shadow: float = Field(default=0.65, ge=0.0, le=1.0)
    shadow_softness: float = Field(default=0.5, ge=0.0, le=1.0)
    #: cast shadow (away from the key light) opacity
    cast_shadow: float = Field(default=0.25, ge=0.0, le=1.0)
    #: film grain
    grain: float = Field(default=0.25, ge=0.0, le=1.0)
    #: how much the seed varies hue, lightness, light and layout
    variation: float = Field(default=0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _colors_match_palette(self) -> ProceduralParams:
        if self.palette == "explicit" and not self.colors:
            raise ValueError("palette 'explicit' needs colors: a list of 1 to 3 '#rrggbb' colours")
        if self.palette != "explicit" and self.colors:
            raise ValueError(f"colors are only used with palette: explicit (palette is '{self.palette}')")
        return self


def validate_params(d: Any) -> ProceduralParams:
    """Validate a style's ``procedural`` mapping; raises ValueError naming the field and the problem."""
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ValueError(f"procedural parameters must be a mapping, got {type(d).__name__}")
    try:
        return ProceduralParams.model_validate(d)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "procedural"
            if err["type"] == "extra_forbidden":
                known = ", ".join(ProceduralParams.model_fields)
                problems.append(f"{loc}: unknown parameter (known: {known})")
                continue
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            if err["loc"]:
                problems.append(f"{loc}: {msg} (got {err.get('input')!r})")
            else:
                problems.append(msg)
        raise ValueError("; ".join(problems)) from None


def podium_lift(procedural: dict | None) -> float:
    """How much higher a style lays the product out (share of the canvas height): its podium's
    height, so the podium stands on the floor where the product would have stood.

    >>> podium_lift({"podium": "cube", "podium_height": 0.12}), podium_lift({"scene": "sweep"})
    (0.12, 0.0)
    """
    p = validate_params(procedural)
    return p.podium_height if p.podium != "none" else 0.0
