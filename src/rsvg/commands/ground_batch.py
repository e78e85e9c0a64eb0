"""The ``--batch`` file of ``rsvg ground``: a CSV (header ``image,query``) or JSONL file of pairs, checked row by
row before any model is loaded, each problem named by its file and line."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from rsvg.errors import RowsError

#: how many problems of a batch file one refusal lists
SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class Pair:
    """One image and query to ground; ``where`` is the batch file's line (``pairs.csv:3``), empty for IMAGE QUERY."""

    image: str
    query: str
    where: str = ""

    def label(self, text: str) -> str:
        """``text`` prefixed by the batch line it comes from, if any."""
        return f"{self.where}: {text}" if self.where else text


def read_rows(path: Path) -> list[tuple[int, object, object]]:
    """``(line, image, query)`` of every row of a CSV (header image,query) or JSONL file, values as read."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise RowsError(f"--batch {path}: not UTF-8 text; give a CSV (image,query) or JSONL file") from None
    rows: list[tuple[int, object, object]] = []
    if path.suffix.lower() == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict) or "image" not in row or "query" not in row:
                raise RowsError(f"{path}:{n}: expected a JSON object with 'image' and 'query'")
            rows.append((n, row["image"], row["query"]))
        return rows
    try:
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or not {"image", "query"} <= {f.strip() for f in reader.fieldnames}:
            raise RowsError(f"{path}:1: the CSV needs a header with the columns image and query")
        reader.fieldnames = [f.strip() for f in reader.fieldnames]
        for row in reader:
            rows.append((reader.line_num, row.get("image"), row.get("query")))
    except csv.Error as exc:
        raise RowsError(f"{path}: not a readable CSV ({exc})") from None
    return rows


def read_pairs(path: Path) -> list[Pair]:
    """The pairs of a batch file, image paths relative to its folder; :class:`RowsError` names the file and the
    line of each row without an image or a query or whose image does not exist (up to :data:`SHOWN_PROBLEMS` of
    them), or an empty file."""
    if path.is_dir():
        raise RowsError(f"--batch {path} is a folder; give a CSV (image,query) or JSONL file")
    if not path.is_file():
        raise RowsError(f"--batch {path}: file not found")
    pairs: list[Pair] = []
    problems: list[str] = []
    for n, image, query in read_rows(path):
        where = f"{path}:{n}"
        if not isinstance(image, str) or not image.strip():
            problems.append(f"{where}: no image (its image is empty or not text)")
        elif not isinstance(query, str) or not query.strip():
            problems.append(f"{where}: the query is empty")
        else:
            file = Path(image.strip())
            pair = Pair(str(file if file.is_absolute() else path.parent / file), query, where)
            missing = image_problem(pair.image)
            if missing is not None:
                problems.append(pair.label(missing))
            pairs.append(pair)
    if problems:
        raise RowsError(_listed(problems))
    if not pairs:
        raise RowsError(f"--batch {path}: no rows (only a header, or an empty file): nothing to ground")
    return pairs


def _listed(problems: list[str]) -> str:
    """The first :data:`SHOWN_PROBLEMS` problems, one per line, and how many more there are."""
    shown = problems[:SHOWN_PROBLEMS]
    more = len(problems) - len(shown)
    return "\n".join(shown) + (f"\n(and {more} more)" if more else "")


def image_problem(image: str) -> str | None:
    """Why ``image`` cannot be an image file (it does not exist, or is a folder), or ``None``."""
    path = Path(image)
    if path.is_dir():
        return f"{path}: a folder, not an image file"
    if not path.exists():
        return f"image not found: {path}"
    return None
