"""Keep a referring expression true when its image is flipped or turned by quarter turns.

Geometry. Image coordinates have x to the right and y downwards. Every spatial word stands for a direction
vector ``(dx, dy)`` with ``dx, dy`` in {-1, 0, 1}: "left" is (-1, 0), "above", "top", "upper" and "north" are
(0, -1), "upper left" and "northwest" are (-1, -1). An operation acts on these vectors as it acts on the image:

========  ================================================================  ==================
op        image operation                                                   (dx, dy) becomes
========  ================================================================  ==================
hflip     mirror left-right, x -> W - x                                     (-dx, dy)
vflip     mirror top-bottom, y -> H - y                                     (dx, -dy)
rot90     a quarter turn counter-clockwise, as ``torch.rot90(img, 1,        (dy, -dx)
          dims=(-2, -1))``: (x, y) -> (y, W - x)
rot180    a half turn, (x, y) -> (W - x, H - y)                             (-dx, -dy)
rot270    a quarter turn clockwise (``k=3``): (x, y) -> (H - y, x)          (-dy, dx)
========  ================================================================  ==================

So under ``rot90`` what was on the left is now at the bottom, and what was at the top is now on the left.

Rendering. Only the spatial words change; every other byte of the query is kept, and the case of each
replaced word follows the word it replaces ("Left" -> "Right", "ABOVE" -> "BELOW"). A flip or half turn keeps
every direction on its axis, so it only swaps words within the same wording ("to the left of" -> "to the
right of", "upper" -> "lower", "top" -> "bottom"). A quarter turn moves directions to the other axis; the new
wording is then the canonical one of DIOR-RSVG:

- a relation between objects: "on the left of X" <-> "below X" / "above X" (also from "to/at/in the left of X"
  and bare "left of X"; "above" at the end of a clause becomes "on the left");
- a location noun ("on the left", "the left of the image", "the left side"): left/right <-> top/bottom, and
  "on the far left" <-> "on the very top";
- a modifier of a noun ("the left vehicle"): left/right <-> upper/lower;
- corners keep their vertical wording and are written vertical word first: "upper left", "top-right";
- superlatives: leftmost/rightmost <-> topmost/bottommost (uppermost/lowermost keep their wording);
- compass words stay compass words: north/south/east/west, "northwest", "north-west", "north west",
  "northern", "northwestern";
- "horizontal(ly)" <-> "vertical(ly)".

Canonical wordings round-trip exactly (rot90 then rot270 gives the query back); other wordings come back in
canonical form (e.g. "to the left of X" -> rot90 -> "below X" -> rot270 -> "on the left of X").

Not treated as directions, and left unchanged: words that merely contain a direction ("lefty", "topaz",
"bottomland", "leftover"), hyphenated compounds with other words ("left-hand", "top-down"), "on top of"
(a physical relation), adverbial "right" ("right next to", "right above"), "right angle", and the vertical
words of three-dimensional relations ("over", "under", "beneath"). "middle", "center" and "centre" have no
direction and are never touched.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["OPS", "remap_query", "transform_direction"]

Direction = tuple[int, int]

# (a, b, c, d): (dx, dy) -> (a*dx + b*dy, c*dx + d*dy); see the module docstring.
_MATRICES: dict[str, tuple[int, int, int, int]] = {
    "hflip": (-1, 0, 0, 1),
    "vflip": (1, 0, 0, -1),
    "rot90": (0, 1, -1, 0),
    "rot180": (-1, 0, 0, -1),
    "rot270": (0, -1, 1, 0),
}
OPS: tuple[str, ...] = tuple(_MATRICES)

_SIDES: dict[str, Direction] = {
    "left": (-1, 0),
    "right": (1, 0),
    "top": (0, -1),
    "bottom": (0, 1),
    "upper": (0, -1),
    "lower": (0, 1),
}
# Vertical wording: "tb" (top/bottom, nouns) or "ul" (upper/lower, modifiers).
_STYLE = {"top": "tb", "bottom": "tb", "upper": "ul", "lower": "ul"}
_VERTICAL = {"tb": ("top", "bottom"), "ul": ("upper", "lower")}
_COMPASS: dict[str, Direction] = {"north": (0, -1), "south": (0, 1), "east": (1, 0), "west": (-1, 0)}
_PREPOSITIONS: dict[str, Direction] = {"above": (0, -1), "below": (0, 1)}
_AXIS_SWAP = {
    "horizontal": "vertical",
    "vertical": "horizontal",
    "horizontally": "vertically",
    "vertically": "horizontally",
}

_FRAME_PREPOSITIONS = frozenset({"on", "to", "in", "at", "toward", "towards"})
_IMAGE_WORDS = frozenset({"image", "picture", "photo", "photograph", "scene", "figure", "frame", "view", "map"})
_IMAGE_DETERMINERS = frozenset({"the", "this", "that", "whole", "entire", "full"})
# Words after which "above"/"below" ends its phrase (so "on the left", not "on the left of").
_CLAUSE_WORDS = frozenset({"and", "or", "but", "is", "are", "was", "were", "which", "that", "who", "where"})
# Words that cannot be the noun a direction word modifies: "the left of", "the left and", "the left is"...
_FUNCTION_WORDS = _CLAUSE_WORDS | frozenset(
    {
        "of",
        "in",
        "on",
        "at",
        "to",
        "by",
        "from",
        "with",
        "near",
        "next",
        "than",
        "as",
        "for",
        "there",
        "the",
        "a",
        "an",
        "this",
        "these",
        "those",
        "it",
        "its",
        "between",
        "beside",
        "besides",
        "close",
        "closest",
        "nearest",
        "adjacent",
        "along",
        "across",
        "around",
        "among",
        "into",
        "onto",
        "over",
        "under",
        "above",
        "below",
        "while",
        "has",
        "have",
        "be",
        "being",
    }
)
# A bare "right" followed by these is an adverb ("right next to", "right above") or not a direction at all.
_ANGLES = frozenset({"angle", "angled", "angles", "triangle", "triangles"})
_NOT_AFTER_SIDE = _ANGLES | frozenset(
    {
        "next",
        "beside",
        "by",
        "above",
        "below",
        "in",
        "at",
        "on",
        "near",
        "under",
        "over",
        "across",
        "behind",
        "after",
        "before",
        "there",
        "here",
        "along",
        "around",
        "between",
        "into",
        "onto",
        "against",
        "outside",
        "inside",
    }
)
_TOKEN = re.compile(r"\w+")


class _Token(NamedTuple):
    start: int
    end: int
    low: str


def transform_direction(direction: Direction, op: str) -> Direction:
    """Map a direction vector ``(dx, dy)`` (x right, y down) through ``op`` (see the module docstring)."""
    if op not in _MATRICES:
        raise ValueError(f"unknown op {op!r}; expected one of {OPS}")
    a, b, c, d = _MATRICES[op]
    dx, dy = direction
    return (a * dx + b * dy, c * dx + d * dy)


def remap_query(query: str, op: str) -> str:
    """Rewrite the spatial words of ``query`` so that it describes the image after ``op``.

    ``op`` is one of ``"hflip"``, ``"vflip"``, ``"rot90"`` (counter-clockwise, as ``torch.rot90`` with
    ``k=1`` on the (H, W) dims), ``"rot180"``, ``"rot270"`` (clockwise). See the module docstring for the
    rules; everything that is not a spatial word is kept byte for byte.
    """
    return _Rewriter(query, op).run()


def _horizontal(dx: int) -> str:
    return "left" if dx < 0 else "right"


def _vertical(dy: int, style: str) -> str:
    return _VERTICAL[style][0 if dy < 0 else 1]


def _render_side(direction: Direction, style: str, sep: str) -> str:
    dx, dy = direction
    if dy == 0:
        return _horizontal(dx)
    if dx == 0:
        return _vertical(dy, style)
    return _vertical(dy, style) + sep + _horizontal(dx)


def _render_compass(direction: Direction, sep: str) -> str:
    dx, dy = direction
    vertical = "" if dy == 0 else ("north" if dy < 0 else "south")
    horizontal = "" if dx == 0 else ("west" if dx < 0 else "east")
    return vertical + sep + horizontal if vertical and horizontal else vertical + horizontal


def _parse_compass(word: str) -> tuple[Direction, bool] | None:
    """Direction of a compass word and whether it is the adjective form ("northern", "southwestern")."""
    adjective = word.endswith("ern")
    base = word[:-3] if adjective else word
    if base in _COMPASS:
        return _COMPASS[base], adjective
    if len(base) > 5 and base[:5] in ("north", "south") and base[5:] in ("east", "west"):
        (_, dy), (dx, _) = _COMPASS[base[:5]], _COMPASS[base[5:]]
        return (dx, dy), adjective
    return None


def _single_axis(direction: Direction) -> bool:
    return (direction[0] == 0) != (direction[1] == 0)


def _case_like(word: str, model: str) -> str:
    if len(model) > 1 and model.isupper():
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _match_case(original: str, new: str) -> str:
    """Give ``new`` the capitalisation of ``original``: all capitals, or word by word, or its first letter."""
    letters = [c for c in original if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return new.upper()
    old_words = _TOKEN.findall(original)
    new_words = _TOKEN.findall(new)
    if len(old_words) != len(new_words):
        return _case_like(new, original)
    models = iter(old_words)
    return _TOKEN.sub(lambda m: _case_like(m.group(), next(models)), new)


class _Rewriter:
    """One pass over the tokens of a query, collecting non-overlapping edits."""

    def __init__(self, text: str, op: str) -> None:
        if op not in _MATRICES:
            raise ValueError(f"unknown op {op!r}; expected one of {OPS}")
        self.text = text
        self.op = op
        self.tokens = [_Token(m.start(), m.end(), m.group().lower()) for m in _TOKEN.finditer(text)]
        self.edits: list[tuple[int, int, str]] = []

    # --- token helpers ---------------------------------------------------------------------------
    def word(self, i: int) -> str:
        return self.tokens[i].low if 0 <= i < len(self.tokens) else ""

    def sep(self, i: int) -> str:
        """Text between token ``i`` and token ``i + 1`` ("" past the ends)."""
        if not 0 <= i < len(self.tokens) - 1:
            return ""
        return self.text[self.tokens[i].end : self.tokens[i + 1].start]

    def spaced(self, i: int) -> bool:
        """Whether tokens ``i`` and ``i + 1`` are separated by white space only."""
        sep = self.sep(i)
        return bool(sep) and sep.isspace()

    def emit(self, first: int, last: int, new: str) -> None:
        """Replace tokens ``first..last`` (inclusive, with what lies between them) by ``new``."""
        start, end = self.tokens[first].start, self.tokens[last].end
        original = self.text[start:end]
        new = _match_case(original, new)
        if new != original:
            self.edits.append((start, end, new))

    def move(self, direction: Direction) -> Direction:
        return transform_direction(direction, self.op)

    # --- driver ----------------------------------------------------------------------------------
    def run(self) -> str:
        i = 0
        while i < len(self.tokens):
            i = self.compass(i) or self.superlative(i) or self.side(i) or self.preposition(i) or self.axis(i) or i + 1
        out = self.text
        for start, end, new in sorted(self.edits, reverse=True):
            out = out[:start] + new + out[end:]
        return out

    def hyphen_bound(self, first: int, last: int) -> bool:
        """Whether tokens ``first..last`` are glued by a hyphen to a neighbour ("left-hand", "top-down")."""
        return self.sep(first - 1) == "-" or self.sep(last) == "-"

    # --- phrase handlers: each returns the index after the phrase, or None if it does not apply ----
    def axis(self, i: int) -> int | None:
        word = self.word(i)
        if word not in _AXIS_SWAP or self.hyphen_bound(i, i):
            return None
        if _MATRICES[self.op][0] == 0:  # a quarter turn exchanges the axes
            self.emit(i, i, _AXIS_SWAP[word])
        return i + 1

    def compass(self, i: int) -> int | None:
        parsed = _parse_compass(self.word(i))
        if parsed is None:
            return None
        (direction, adjective), last, sep = parsed, i, ""
        if _single_axis(direction) and not adjective and self.sep(i) in (" ", "-"):
            following = _parse_compass(self.word(i + 1))
            if following is not None and _single_axis(following[0]):
                (dx2, dy2), adjective2 = following
                if (dx2 == 0) != (direction[0] == 0):  # the other axis: "north west", "west-north"
                    direction = (direction[0] + dx2, direction[1] + dy2)
                    adjective, last, sep = adjective2, i + 1, self.sep(i)
        if self.hyphen_bound(i, last):
            return last + 1
        self.emit(i, last, _render_compass(self.move(direction), sep) + ("ern" if adjective else ""))
        return last + 1

    def superlative(self, i: int) -> int | None:
        word = self.word(i)
        if word.endswith("most") and word[:-4] in _SIDES:
            base, last, sep = word[:-4], i, ""
        elif word in _SIDES and self.sep(i) == "-" and self.word(i + 1) == "most":
            base, last, sep = word, i + 1, "-"
        else:
            return None
        if self.hyphen_bound(i, last):
            return last + 1
        style = _STYLE.get(base, "tb")
        self.emit(i, last, _render_side(self.move(_SIDES[base]), style, "") + sep + "most")
        return last + 1

    def preposition(self, i: int) -> int | None:
        word = self.word(i)
        if word not in _PREPOSITIONS or self.hyphen_bound(i, i):
            return None
        dx, dy = self.move(_PREPOSITIONS[word])
        if dx == 0:
            self.emit(i, i, "above" if dy < 0 else "below")
        else:
            object_follows = self.spaced(i) and self.word(i + 1) not in _CLAUSE_WORDS
            self.emit(i, i, f"on the {_horizontal(dx)}" + (" of" if object_follows else ""))
        return i + 1

    def is_direction_word(self, i: int) -> bool:
        word = self.word(i)
        if word not in _SIDES:
            return False
        if word in ("top", "bottom") and self.word(i - 1) == "on" and self.word(i + 1) == "of":
            return False  # "on top of": a physical relation (and "on bottom of", so that vflip inverts itself)
        if word in ("left", "right") and self.spaced(i) and self.word(i + 1) in _NOT_AFTER_SIDE:
            # "right next to", "right above", "right angle": an adverb or not a direction. Applied to
            # "left" too, so that a flip never turns a direction into a non-direction.
            return self.word(i - 1) in ("the", "far", "very", "its", "their") and self.word(i + 1) not in _ANGLES
        return True

    def names_image(self, j: int) -> bool:
        """Whether tokens from ``j`` read "(the) image" ("of the image", "of this picture")."""
        for _ in range(3):
            if self.word(j) in _IMAGE_WORDS:
                return True
            if self.word(j) not in _IMAGE_DETERMINERS:
                return False
            j += 1
        return False

    def side(self, i: int) -> int | None:
        if not self.is_direction_word(i):
            return None
        source, last, corner_sep = _SIDES[self.word(i)], i, " "
        style = _STYLE.get(self.word(i))
        if self.sep(i) in (" ", "-") and self.is_direction_word(i + 1):
            dx, dy = _SIDES[self.word(i + 1)]
            if (dx == 0) != (source[0] == 0):  # a corner: "upper left", "left-top"
                source, last, corner_sep = (source[0] + dx, source[1] + dy), i + 1, self.sep(i)
                style = style or _STYLE.get(self.word(i + 1))
        if self.hyphen_bound(i, last):
            return last + 1
        target = self.move(source)

        # Context: [preposition] [the] [far|very] PHRASE [of ...]
        k = i - 1
        modifier = k if self.word(k) in ("far", "very") and self.spaced(k) else None
        if modifier is not None:
            k -= 1
        article = k if self.word(k) == "the" and self.spaced(k) else None
        preposition = None
        if article is not None and self.word(article - 1) in _FRAME_PREPOSITIONS and self.spaced(article - 1):
            preposition = article - 1
        of = last + 1 if self.word(last + 1) == "of" and self.spaced(last) else None
        relation = (
            of is not None
            and not self.names_image(of + 1)
            and (preposition is not None or (article is None and modifier is None))
        )

        if relation and target[0] == 0 and source[1] == 0:
            # "on the left of X" -> "below X": a vertical relation reads as a preposition.
            assert of is not None
            self.emit(i if preposition is None else preposition, of, "above" if target[1] < 0 else "below")
            return of + 1

        if style is None:  # a horizontal word turned vertical: a noun or a modifier?
            modifies_noun = self.spaced(last) and self.word(last + 1) not in _FUNCTION_WORDS
            style = "ul" if modifies_noun and modifier is None else "tb"
        self.emit(i, last, _render_side(target, style, corner_sep))
        if modifier is not None and _single_axis(target) and (target[0] == 0) != (source[0] == 0):
            self.emit(modifier, modifier, "very" if target[0] == 0 else "far")
        return last + 1
