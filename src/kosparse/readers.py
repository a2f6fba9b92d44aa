"""Streaming readers for chunk files in the plan's schema ``{id, url, title, text, language}``.

Supported layouts: JSON Lines, JSON arrays, Parquet and WikiExtractor ``<doc>`` files, each plain or
compressed with gzip, bzip2 or xz (by extension). Readers yield one :class:`RawRow` per input row —
either a parsed record or the reason it could not be parsed — so that the caller can quarantine bad
rows with their file and line instead of losing them.

Hand-written because no maintained library reads all four layouts *with per-row error reporting*:
``datasets``/``pyarrow.json`` stop at the first malformed line and do not say which line it was.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import html
import lzma
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow.parquet as pq

FIELDS = ("id", "url", "title", "text", "language")
"""The plan's chunk schema."""

_COMPRESSED: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


class InputError(RuntimeError):
    """An input path cannot be read at all (missing, unknown format, unreadable archive)."""


@dataclass(slots=True)
class RawRow:
    """One input row: a parsed record, or the reason it is invalid.

    Attributes:
        file: The file the row came from.
        line: 1-based line number (JSONL, WikiExtractor), element index (JSON array) or row index (Parquet).
        record: The parsed mapping, or ``None`` when the row is invalid.
        error: An invalid-row reason (``malformed_json``, ``invalid_utf8``, ``not_an_object``), or ``None``.
        raw: The offending raw text (for the preview of a rejected row), only when ``error`` is set.
        nbytes: Raw bytes this row occupied in the (decompressed) input, for throughput figures.
        data: A JSON Lines row read lazily (``read_jsonl(lazy=True)``): its bytes, not yet decoded (then
            ``record`` and ``error`` are unset until :func:`decode_row`).
    """

    file: str
    line: int
    record: dict[str, Any] | None
    error: str | None = None
    raw: str = ""
    nbytes: int = 0
    data: bytes | None = None


def _open_binary(path: Path) -> IO[bytes]:
    opener = _COMPRESSED.get(path.suffix.lower())
    if opener is not None:
        fh: IO[bytes] = opener(path, "rb")
        return fh
    return path.open("rb")


def detect_format(path: Path) -> str:
    """Guess a file's layout from its name (compression suffixes ignored).

    Args:
        path: The input file.

    Returns:
        ``jsonl``, ``json``, ``parquet`` or ``wikiextractor``.

    Raises:
        InputError: If the extension is not recognised.
    """
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in {".jsonl", ".ndjson"}:
        return "jsonl"
    if ext == ".json":
        return "json"
    if ext in {".parquet", ".pq"}:
        return "parquet"
    if ext in {".xml", ".txt", ""} or re.fullmatch(r"wiki_\d+", path.name.split(".")[0]):
        # WikiExtractor writes extensionless files named wiki_00, wiki_01, ...
        return "wikiextractor"
    raise InputError(f"{path}: cannot tell the format from {path.name!r}; set the source's `format`")


def expand_globs(patterns: Sequence[str], root: Path | None = None) -> list[Path]:
    """Expand glob patterns into a sorted, de-duplicated list of files.

    Args:
        patterns: Glob patterns (``**`` allowed), relative to ``root`` unless absolute.
        root: Base directory for relative patterns (the current directory when ``None``).

    Returns:
        Sorted existing files.

    Raises:
        InputError: If a pattern matches no file.
    """
    files: set[Path] = set()
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() or root is None else str(root / pattern)
        hits = [Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file()]
        if not hits:
            raise InputError(f"no input file matches {pattern!r} (looked in {Path(full).parent.resolve()})")
        files.update(hits)
    return sorted(files)


def _decode_line(path: str, lineno: int, raw: bytes) -> RawRow:
    nbytes = len(raw)
    try:
        # orjson reads the bytes and checks their UTF-8 itself: half the time of decoding to str first.
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None  # below: say whether the UTF-8 or the JSON is at fault
    if isinstance(obj, dict):
        return RawRow(path, lineno, obj, None, "", nbytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return RawRow(path, lineno, None, "invalid_utf8", raw.decode("utf-8", "replace"), nbytes)
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return RawRow(path, lineno, None, "malformed_json", text, nbytes)
    if not isinstance(obj, dict):
        return RawRow(path, lineno, None, "not_an_object", text, nbytes)
    return RawRow(path, lineno, obj, None, "", nbytes)


def decode_row(row: RawRow) -> RawRow:
    """The decoded form of a lazily read JSON Lines row (any other row as it is).

    Args:
        row: A row from :func:`read_rows`.

    Returns:
        A row with ``record`` or ``error`` (and ``raw``) set.
    """
    return row if row.data is None else _decode_line(row.file, row.line, row.data)


def read_jsonl(path: Path, lazy: bool = False) -> Iterator[RawRow]:
    """Stream a JSON Lines file row by row; blank lines are skipped.

    Args:
        path: The file (plain or compressed).
        lazy: Leave each line undecoded in ``RawRow.data`` (for :func:`decode_row` in a worker process:
            decoding and parsing are most of the cost of reading).

    Yields:
        One :class:`RawRow` per non-blank line.
    """
    name = str(path)
    with _open_binary(path) as fh:
        for lineno, raw in enumerate(fh, start=1):
            stripped = raw.strip()
            if stripped:
                yield RawRow(name, lineno, None, None, "", len(stripped), stripped) if lazy else _decode_line(
                    name, lineno, stripped)


def read_json_array(path: Path) -> Iterator[RawRow]:
    """Read a file holding one JSON array of objects (one chunk file is held in memory at a time).

    Args:
        path: The file (plain or compressed).

    Yields:
        One :class:`RawRow` per array element.

    Raises:
        InputError: If the file is not valid UTF-8 JSON or not an array — the whole file is unusable.
    """
    name = str(path)
    with _open_binary(path) as fh:
        data = fh.read()
    try:
        arr = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(arr, list):
        raise InputError(f"{path}: expected a JSON array of objects, got {type(arr).__name__}")
    for i, obj in enumerate(arr, start=1):
        if isinstance(obj, dict):
            yield RawRow(name, i, obj, None, "", 0)
        else:
            yield RawRow(name, i, None, "not_an_object", orjson.dumps(obj).decode(), 0)


def read_parquet(path: Path, batch_size: int = 4096) -> Iterator[RawRow]:
    """Stream a Parquet file in record batches.

    Columns outside the schema are ignored; missing schema columns surface as missing fields.

    Args:
        path: The Parquet file.
        batch_size: Rows per record batch.

    Yields:
        One :class:`RawRow` per row.
    """
    name = str(path)
    try:
        pf = pq.ParquetFile(path, pre_buffer=False)  # pre_buffer keeps every row group read in memory
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from exc
    columns = [c for c in FIELDS if c in pf.schema_arrow.names]
    index = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
        for rec in batch.to_pylist():
            index += 1
            yield RawRow(name, index, rec, None, "", 0)


_DOC_OPEN = re.compile(rb'<doc\s+([^>]*)>')
_ATTR = re.compile(rb'(\w+)="([^"]*)"')


def read_wikiextractor(path: Path) -> Iterator[RawRow]:
    """Stream a WikiExtractor ``<doc id=".." url=".." title="..">`` file.

    The body's first line repeats the title in WikiExtractor output; it is removed.

    Args:
        path: The file (plain or compressed).

    Yields:
        One :class:`RawRow` per ``<doc>`` element; an unterminated element is ``malformed_doc``.
    """
    name = str(path)
    with _open_binary(path) as fh:
        attrs: dict[str, str] | None = None
        start = 0
        body: list[bytes] = []
        for lineno, raw in enumerate(fh, start=1):
            m = _DOC_OPEN.match(raw.lstrip())
            if m:
                if attrs is not None:
                    yield RawRow(name, start, None, "malformed_doc", b"".join(body).decode("utf-8", "replace"))
                try:
                    attrs = {k.decode(): html.unescape(v.decode("utf-8")) for k, v in _ATTR.findall(m.group(1))}
                except UnicodeDecodeError:
                    attrs = {}
                start, body = lineno, []
            elif raw.strip() == b"</doc>" and attrs is not None:
                yield _finish_doc(name, start, attrs, body)
                attrs, body = None, []
            elif attrs is not None:
                body.append(raw)
        if attrs is not None:
            yield RawRow(name, start, None, "malformed_doc", b"".join(body).decode("utf-8", "replace"))


def _finish_doc(name: str, start: int, attrs: dict[str, str], body: list[bytes]) -> RawRow:
    blob = b"".join(body)
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return RawRow(name, start, None, "invalid_utf8", blob.decode("utf-8", "replace"), len(blob))
    lines = text.strip("\n").split("\n")
    title = attrs.get("title", "")
    if lines and lines[0].strip() == title:
        lines = lines[1:]
    rec = {"id": attrs.get("id"), "url": attrs.get("url"), "title": title, "text": "\n".join(lines)}
    return RawRow(name, start, rec, None, "", len(blob))


def read_rows(path: Path, fmt: str = "auto", batch_size: int = 4096, lazy: bool = False) -> Iterator[RawRow]:
    """Dispatch to the reader for ``path``'s layout.

    Args:
        path: The input file.
        fmt: ``auto`` or an explicit layout.
        batch_size: Parquet batch size.
        lazy: Leave JSON Lines rows undecoded (see :func:`read_jsonl`).

    Returns:
        An iterator of :class:`RawRow`.

    Raises:
        InputError: On an unknown layout.
    """
    kind = detect_format(path) if fmt == "auto" else fmt
    if kind == "jsonl":
        return read_jsonl(path, lazy)
    if kind == "json":
        return read_json_array(path)
    if kind == "parquet":
        return read_parquet(path, batch_size)
    if kind == "wikiextractor":
        return read_wikiextractor(path)
    raise InputError(f"{path}: unknown format {kind!r}")
