"""Ingest: read tagged sources, validate, normalise, filter and de-duplicate into ``documents.parquet``.

Every input row ends in exactly one place: ``documents.parquet`` or ``rejects.jsonl`` (with file, line,
reason and a preview). ``ingest_report.json`` counts each reason, separating *invalid* rows (the input is
broken) from rows *filtered* by policy (length, language, duplicates).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import chain, islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from kosparse.config import IngestConfig, SourceConfig
from kosparse.normalize import hangul_ratio, normalize_text
from kosparse.pool import bounded_imap
from kosparse.readers import RawRow, decode_row, expand_globs, read_rows

INVALID_REASONS = (
    "malformed_json", "malformed_doc", "not_an_object", "invalid_utf8",
    "missing_field", "wrong_type", "empty_title", "oversized_text",
)
# `empty_text` is policy, not breakage: WikiExtractor exports write redirect pages as documents with an
# empty body (27% of the rows of the shared Korean Wikipedia sample), so counting them as invalid would
# trip the invalid-rate guard on every real dump.
FILTERED_REASONS = ("empty_text", "too_short", "low_hangul_ratio", "duplicate_id", "duplicate_text")

DOCUMENT_SCHEMA = pa.schema([
    ("source", pa.string()),
    ("id", pa.string()),
    ("url", pa.string()),
    ("title", pa.string()),
    ("text", pa.string()),
    ("language", pa.string()),
    ("n_chars", pa.int32()),
    ("hangul_ratio", pa.float32()),
])


class IngestError(RuntimeError):
    """Too many invalid rows in at least one file (the message names the files and reasons)."""


@dataclass
class FileStats:
    """Per-file counts."""

    file: str
    source: str
    rows: int = 0
    kept: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    filtered: Counter[str] = field(default_factory=Counter)


@dataclass
class IngestReport:
    """What ``ingest`` did, as written to ``ingest_report.json``."""

    rows_read: int
    documents_kept: int
    invalid: dict[str, int]
    filtered: dict[str, int]
    files: list[dict[str, Any]]
    bytes_read: int
    seconds: float
    stopped_at_max_docs: bool

    def to_json(self) -> str:
        """Serialise as pretty, stable JSON."""
        return json.dumps(asdict(self), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def _strip_namu(text: str) -> str:
    """Strip Namuwiki markup with the maintained ``namu-wiki-extractor`` package."""
    try:
        from namuwiki.extractor import extract_text
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError("markup: namu needs the `namu-wiki-extractor` package (pip install "
                          "namu-wiki-extractor)") from exc
    return str(extract_text(text))


def _check_record(rec: dict[str, Any]) -> tuple[str | None, str]:
    """Return ``(reason, detail)`` for a structurally invalid record, else ``(None, "")``."""
    for key in ("id", "title", "text"):
        if rec.get(key) is None:
            return "missing_field", key
    if isinstance(rec["id"], bool) or not isinstance(rec["id"], str | int):
        return "wrong_type", "id"
    for key in ("title", "text"):
        if not isinstance(rec[key], str):
            return "wrong_type", key
    for key in ("url", "language"):
        if rec.get(key) is not None and not isinstance(rec[key], str):
            return "wrong_type", key
    return None, ""


class _Rejects:
    """Writes rejected rows as JSON Lines and keeps the counts."""

    def __init__(self, path: Path, preview_chars: int) -> None:
        self._fh = path.open("wb")
        self._preview = preview_chars

    def write(self, stats: FileStats, row: RawRow, category: str, reason: str, detail: str = "",
              doc_id: str | None = None, preview: str = "") -> None:
        (stats.invalid if category == "invalid" else stats.filtered)[reason] += 1
        entry = {
            "file": stats.file, "line": row.line, "source": stats.source, "id": doc_id,
            "category": category, "reason": reason, "detail": detail,
            "preview": (preview or row.raw)[: self._preview],
        }
        self._fh.write(orjson.dumps(entry) + b"\n")

    def close(self) -> None:
        self._fh.close()


class _DocumentWriter:
    """Writes accepted documents to Parquet, ``batch_size`` rows to a row group."""

    def __init__(self, path: Path, batch_size: int) -> None:
        self._writer = pq.ParquetWriter(path, DOCUMENT_SCHEMA, compression="zstd")
        self._batch_size = batch_size
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        """Queue accepted documents; full row groups are written at once."""
        if batch.num_rows:
            self._pending.append(batch)
            self._rows += batch.num_rows
        while self._rows >= self._batch_size:
            table = pa.Table.from_batches(self._pending, DOCUMENT_SCHEMA)
            # One chunk per column: Parquet's dictionary fallback, and so the file's bytes, follow the chunks.
            self._writer.write_table(table.slice(0, self._batch_size).combine_chunks())
            rest = table.slice(self._batch_size)
            self._pending, self._rows = rest.to_batches(), rest.num_rows

    def close(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_batches(self._pending, DOCUMENT_SCHEMA).combine_chunks())
        self._writer.close()


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def iter_source_rows(source: SourceConfig, root: Path, batch_size: int,
                     lazy: bool = False) -> Iterator[tuple[Path, RawRow]]:
    """Yield ``(file, row)`` for every row of every file of a source, files in sorted order.

    Args:
        source: The source's config.
        root: Base directory for relative globs.
        batch_size: Parquet batch size.
        lazy: Leave JSON Lines rows undecoded (see :func:`kosparse.readers.read_jsonl`).

    Yields:
        Each file with each of its rows.
    """
    for path in expand_globs(source.paths, root):
        for row in read_rows(path, source.format, batch_size, lazy):
            yield path, row


def ingest(sources: list[SourceConfig], cfg: IngestConfig, documents_path: Path, rejects_path: Path,
           report_path: Path, root: Path = Path("."), max_docs: int | None = None,
           progress: Callable[[int], None] | None = None) -> IngestReport:
    """Run the ingest step.

    Args:
        sources: Tagged input sources, read in order.
        cfg: Filters and thresholds.
        documents_path: Output Parquet file of accepted documents.
        rejects_path: Output JSON Lines file of rejected rows.
        report_path: Output JSON report.
        root: Base directory for relative globs and for file names in the outputs.
        max_docs: Stop after this many accepted documents.
        progress: Optional callback called with the number of rows read so far, every 10,000 rows.

    Returns:
        The report that was written.

    Raises:
        IngestError: When a file's invalid rows exceed ``cfg.max_invalid_rate`` (after all outputs,
            including the report and the rejects, are written).
        kosparse.readers.InputError: When an input cannot be read at all.
    """
    for p in (documents_path, rejects_path, report_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rejects = _Rejects(rejects_path, cfg.preview_chars)
    writer = _DocumentWriter(documents_path, cfg.batch_size)
    seen_ids: set[tuple[str, str]] = set()
    seen_text: set[bytes] = set()
    all_stats: list[FileStats] = []
    rows_read = kept = bytes_read = 0
    stopped = False
    current: Path | None = None
    stats = FileStats("", "")
    n_workers = cfg.workers or os.cpu_count() or 1
    try:
        for source, rows, prepared in _prepared_batches(sources, root, cfg, n_workers):
            keep = [False] * prepared.docs.num_rows
            for (path, row), prep in zip(rows, prepared.outcomes, strict=True):
                if path is not current:  # one Path object per file: identity is enough (and cheaper)
                    current = path
                    stats = FileStats(_relative(path, root), source.name)
                    all_stats.append(stats)
                stats.rows += 1
                rows_read += 1
                bytes_read += row.nbytes
                if progress is not None and rows_read % 10_000 == 0:
                    progress(rows_read)
                if _accept(row, prep, prepared, source, cfg, stats, rejects, seen_ids, seen_text):
                    assert isinstance(prep, int)
                    keep[prep] = True
                    stats.kept += 1
                    kept += 1
                    if max_docs is not None and kept >= max_docs:
                        stopped = True
                        break
            writer.add(prepared.docs.filter(pa.array(keep, pa.bool_())))
            if stopped:
                break
    finally:
        writer.close()
        rejects.close()

    invalid: Counter[str] = Counter()
    filtered: Counter[str] = Counter()
    for s in all_stats:
        invalid.update(s.invalid)
        filtered.update(s.filtered)
    report = IngestReport(
        rows_read=rows_read, documents_kept=kept, invalid=dict(sorted(invalid.items())),
        filtered=dict(sorted(filtered.items())),
        files=[{"file": s.file, "source": s.source, "rows": s.rows, "kept": s.kept,
                "invalid": dict(sorted(s.invalid.items())), "filtered": dict(sorted(s.filtered.items()))}
               for s in all_stats],
        bytes_read=bytes_read, seconds=round(time.perf_counter() - t0, 3), stopped_at_max_docs=stopped,
    )
    report_path.write_text(report.to_json(), encoding="utf-8")
    _check_invalid_rate(all_stats, cfg, rejects_path)
    return report


Rejected = tuple[str, str, str, str | None, str]
"""A rejected row as :func:`_prepare` describes it: ``(category, reason, detail, doc id, preview)``."""


@dataclass
class PreparedBatch:
    """What a worker makes of a batch of rows (:func:`_prepare_batch`).

    Attributes:
        docs: The rows that passed every per-row check, as documents in ``DOCUMENT_SCHEMA`` (Arrow: cheap
            to send back from a worker).
        ids: Their ids, and ``digests`` their normalised-text hashes, for de-duplication.
        outcomes: Per input row: the row's index in ``docs``, its :data:`Rejected` description, or ``None``
            for a row the reader already found invalid (its ``RawRow.error`` says why).
    """

    docs: pa.RecordBatch
    ids: list[str]
    digests: list[bytes]
    outcomes: list[int | Rejected | None]


def _prepare(rec: dict[str, Any], source: SourceConfig,
             cfg: IngestConfig) -> tuple[str, dict[str, Any], bytes] | Rejected:
    """The per-row work that needs no state across rows: check, normalise, filter by policy, hash.

    It runs in worker processes (see :func:`_prepared_batches`); de-duplication, which needs every earlier
    row, stays with :func:`_accept` in the parent.

    Returns:
        ``("doc", document, text digest)`` or the row's :data:`Rejected` description.
    """
    reason, detail = _check_record(rec)
    if reason is not None:
        return "invalid", reason, detail, None, orjson.dumps(rec, default=str).decode()[: cfg.preview_chars]
    doc_id = str(rec["id"])
    raw_text: str = rec["text"]
    if len(raw_text) > cfg.max_chars:
        return ("invalid", "oversized_text", f"{len(raw_text)} chars > {cfg.max_chars}", doc_id,
                raw_text[: cfg.preview_chars])
    if source.markup == "namu":
        raw_text = _strip_namu(raw_text)
    text = normalize_text(raw_text)
    title = normalize_text(rec["title"]).replace("\n", " ")
    if not text:
        return "filtered", "empty_text", "", doc_id, rec["title"][: cfg.preview_chars]
    preview = text[: cfg.preview_chars]
    if not title:
        return "invalid", "empty_title", "", doc_id, preview
    if len(text) < cfg.min_chars:
        return "filtered", "too_short", f"{len(text)} chars < {cfg.min_chars}", doc_id, preview
    ratio = hangul_ratio(text)
    if ratio < cfg.min_hangul_ratio:
        return "filtered", "low_hangul_ratio", f"{ratio:.3f} < {cfg.min_hangul_ratio}", doc_id, preview
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=12).digest() if cfg.dedupe_text else b""
    doc = {"source": source.name, "id": doc_id, "url": rec.get("url") or "", "title": title, "text": text,
           "language": rec.get("language") or source.language, "n_chars": len(text), "hangul_ratio": ratio}
    return "doc", doc, digest


def _prepare_batch(work: tuple[SourceConfig, IngestConfig, list[bytes | dict[str, Any] | None]]) -> PreparedBatch:
    """:func:`_prepare` over a batch of rows: undecoded JSON Lines rows (bytes), parsed records, or
    ``None`` for a row the reader found invalid."""
    source, cfg, items = work
    cols: dict[str, list[Any]] = {name: [] for name in DOCUMENT_SCHEMA.names}
    digests: list[bytes] = []
    outcomes: list[int | Rejected | None] = []
    for item in items:
        if isinstance(item, bytes):
            row = decode_row(RawRow("", 0, None, data=item))
            if row.record is None:
                outcomes.append(("invalid", row.error or "invalid", "", None, row.raw[: cfg.preview_chars]))
                continue
            item = row.record
        if item is None:
            outcomes.append(None)
            continue
        prep = _prepare(item, source, cfg)
        if len(prep) != 3:  # a Rejected tuple
            outcomes.append(prep)
            continue
        _, doc, digest = prep
        outcomes.append(len(digests))
        digests.append(digest)
        for name, col in cols.items():
            col.append(doc[name])
    docs = pa.RecordBatch.from_pydict(cols, schema=DOCUMENT_SCHEMA)
    return PreparedBatch(docs, cols["id"], digests, outcomes)


_Batch = tuple[SourceConfig, list[tuple[Path, RawRow]]]


def _row_batches(sources: list[SourceConfig], root: Path, cfg: IngestConfig) -> Iterator[_Batch]:
    """Rows of every source in order, ``cfg.workers_batch`` at a time (a batch never spans two sources)."""
    for source in sources:
        rows = iter_source_rows(source, root, cfg.batch_size, lazy=True)
        while batch := list(islice(rows, cfg.workers_batch)):
            yield source, batch


def _prepared_batches(sources: list[SourceConfig], root: Path, cfg: IngestConfig,
                      workers: int) -> Iterator[tuple[SourceConfig, list[tuple[Path, RawRow]], PreparedBatch]]:
    """Row batches in input order, each with its :func:`_prepare` results.

    Reading stays in this process (it knows the file and line that rejects cite); decoding JSON Lines,
    normalisation and filters run on ``workers`` processes when there are more than one and the input is
    larger than one batch. Results come back in input order, as Arrow record batches, so the output does
    not depend on the worker count.
    """
    batches = _row_batches(sources, root, cfg)
    head = list(islice(batches, 2))
    if workers <= 1 or len(head) < 2:
        for source, rows in chain(head, batches):
            yield source, rows, _prepare_batch(_work(cfg, (source, rows)))
        return
    ctx = get_context("spawn")
    with ctx.Pool(workers) as pool:
        for (source, rows), prepared in bounded_imap(pool, _prepare_batch, chain(head, batches), 2 * workers,
                                                     payload=lambda item: _work(cfg, item)):
            yield source, rows, prepared


def _work(cfg: IngestConfig, item: _Batch) -> tuple[SourceConfig, IngestConfig, list[bytes | dict[str, Any] | None]]:
    """What a worker needs of a batch: its source, the config and each row's bytes or parsed record."""
    source, rows = item
    return source, cfg, [row.data if row.data is not None else row.record for _, row in rows]


def _accept(row: RawRow, prep: int | Rejected | None, batch: PreparedBatch, source: SourceConfig, cfg: IngestConfig,
            stats: FileStats, rejects: _Rejects, seen_ids: set[tuple[str, str]], seen_text: set[bytes]) -> bool:
    """Record a prepared row's rejection or de-duplicate it; return whether the document is kept."""
    if prep is None:  # the reader found the row invalid
        rejects.write(stats, row, "invalid", row.error or "invalid")
        return False
    if not isinstance(prep, int):
        category, reason, detail, doc_id, preview = prep
        rejects.write(stats, row, category, reason, detail, doc_id, preview)
        return False
    doc_id, digest = batch.ids[prep], batch.digests[prep]
    if cfg.dedupe_id:
        key = (source.name, doc_id)
        if key in seen_ids:
            rejects.write(stats, row, "filtered", "duplicate_id", "", doc_id, _text(batch, prep))
            return False
        seen_ids.add(key)
    if cfg.dedupe_text:
        if digest in seen_text:
            rejects.write(stats, row, "filtered", "duplicate_text", "", doc_id, _text(batch, prep))
            return False
        seen_text.add(digest)
    return True


def _text(batch: PreparedBatch, index: int) -> str:
    """The normalised text of document ``index`` of ``batch`` (the preview of a duplicate)."""
    return str(batch.docs.column("text")[index].as_py())


def _check_invalid_rate(all_stats: list[FileStats], cfg: IngestConfig, rejects_path: Path) -> None:
    bad = []
    for s in all_stats:
        n_invalid = sum(s.invalid.values())
        if s.rows >= cfg.min_rows_for_rate and n_invalid / s.rows > cfg.max_invalid_rate:
            reasons = ", ".join(f"{k}={v}" for k, v in s.invalid.most_common())
            bad.append(f"{s.file}: {n_invalid}/{s.rows} invalid rows ({reasons})")
    if bad:
        raise IngestError(
            f"invalid rows exceed ingest.max_invalid_rate={cfg.max_invalid_rate} in {len(bad)} file(s):\n  "
            + "\n  ".join(bad) + f"\nEach rejected row is listed in {rejects_path}."
        )
