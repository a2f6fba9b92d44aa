"""Assemble: mined rows -> the trainer's ``kd`` data (``{"query", "docs", "scores"}``), split by document.

Each row of ``mined.parquet`` becomes ``{"query": str, "docs": [str], "scores": [float]}`` with the
docs sorted by score descending (the positive first). The positive's text is the query's
``positive_text`` when set (e.g. the passage without the sentence the query was taken from), else the
passage text. Rows go to ``val`` when a seeded hash of the query's source document (``source:doc_id``,
the positive's document) falls below ``val_fraction``; so no source document has queries on both sides.

Outputs are byte-stable: JSON Lines with ``ensure_ascii=False``, compact separators and scores rounded
to ``score_decimals``; Hugging Face datasets saved with a content-derived fingerprint; ``metadata.json``
with sorted keys and no wall-clock time. ``created_at`` is taken from ``assemble.created_at`` or the
``SOURCE_DATE_EPOCH`` environment variable (the reproducible-builds convention) and is omitted when
neither is set: a file's mtime or the current time would change the bytes of every rerun.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kosparse.config import ConfigError
from kosparse.mine import BANDS

SPLITS = ("train", "val")
ROW_INDEX_SCHEMA = pa.schema([
    ("split", pa.string()),
    ("row", pa.int64()),
    ("query_id", pa.string()),
    ("kind", pa.string()),
    ("source", pa.string()),
    ("doc_id", pa.string()),
])
"""``row_index.parquet``: which query and source document each output row comes from (for validation)."""


@dataclass
class AssembleConfig:
    """The ``assemble`` section.

    Attributes:
        val_fraction: Share of source documents (and so of queries, roughly) in ``val``.
        seed: Seed of the document hash that decides the split.
        created_at: ISO 8601 timestamp written to ``metadata.json``; ``None`` falls back to
            ``SOURCE_DATE_EPOCH``, else the field is omitted.
        score_decimals: Decimals scores are rounded to in every output.
        histogram_bin: Bin width of ``score_distribution.csv``.
    """

    val_fraction: float = 0.1
    seed: int = 0
    created_at: str | None = None
    score_decimals: int = 6
    histogram_bin: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"assemble.val_fraction: must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.score_decimals <= 12:
            raise ConfigError("assemble.score_decimals: must be in [0, 12]")
        if self.histogram_bin <= 0:
            raise ConfigError("assemble.histogram_bin: must be positive")
        if self.created_at is not None:
            try:
                datetime.fromisoformat(self.created_at)
            except ValueError as exc:
                raise ConfigError(f"assemble.created_at: not ISO 8601: {self.created_at!r}") from exc


def split_of(source: str, doc_id: str, seed: int, val_fraction: float) -> str:
    """The split of a source document: a seeded BLAKE2b hash of ``source:doc_id`` against ``val_fraction``.

    Args:
        source: Source tag.
        doc_id: Document id within the source.
        seed: Split seed.
        val_fraction: Share of documents in ``val``.

    Returns:
        ``"train"`` or ``"val"``.
    """
    digest = hashlib.blake2b(f"{seed}\x1f{source}:{doc_id}".encode(), digest_size=8).digest()
    return "val" if int.from_bytes(digest, "little") / 2.0**64 < val_fraction else "train"


def created_at(cfg: AssembleConfig, environ: dict[str, str] | None = None) -> str | None:
    """The reproducible creation time: the param, else ``SOURCE_DATE_EPOCH``, else ``None``.

    Args:
        cfg: The assemble settings.
        environ: Environment (``os.environ`` when ``None``).

    Returns:
        An ISO 8601 UTC timestamp or ``None``.

    Raises:
        ConfigError: If ``SOURCE_DATE_EPOCH`` is not an integer.
    """
    if cfg.created_at is not None:
        return cfg.created_at
    env = os.environ if environ is None else environ
    epoch = env.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        return datetime.fromtimestamp(int(epoch), tz=UTC).isoformat().replace("+00:00", "Z")
    except ValueError as exc:
        raise ConfigError(f"SOURCE_DATE_EPOCH must be an integer, got {epoch!r}") from exc


def dumps_row(row: dict[str, Any]) -> str:
    """One JSON Lines record with stable bytes (key order as given, UTF-8, compact)."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _stats(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    if not len(arr):
        return {"n": 0}
    return {"n": int(len(arr)), "min": float(arr.min()), "mean": round(float(arr.mean()), 4),
            "p50": float(np.percentile(arr, 50)), "p95": round(float(np.percentile(arr, 95)), 4),
            "max": float(arr.max())}


@dataclass
class AssembleResult:
    """What :func:`assemble` wrote."""

    train_samples: int = 0
    val_samples: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def _passage_texts(passages: Path, wanted: pa.Array) -> tuple[dict[str, str], dict[str, int]]:
    table = pq.read_table(passages, columns=["passage_id", "text", "n_tokens"],
                          filters=pc.field("passage_id").isin(wanted))
    ids = table.column("passage_id").to_pylist()
    return (dict(zip(ids, table.column("text").to_pylist(), strict=True)),
            dict(zip(ids, table.column("n_tokens").to_pylist(), strict=True)))


def _save_hf(rows: list[dict[str, Any]], path: Path) -> None:
    """Save rows as a Hugging Face dataset with a content-derived fingerprint (stable bytes)."""
    from datasets import Dataset, Features, List, Value
    from datasets.table import InMemoryTable

    features = Features({"query": Value("string"), "docs": List(Value("string")),
                         "scores": List(Value("float64"))})
    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    digest = hashlib.blake2b(digest_size=8)
    for row in rows:
        digest.update(dumps_row(row).encode("utf-8"))
        digest.update(b"\n")
    # An empty split still gets one (empty) shard: with zero shards load_from_disk fails.
    Dataset(InMemoryTable(table), fingerprint=digest.hexdigest()).save_to_disk(
        str(path), num_shards=1 if not rows else None)


def _histogram(scores_by_band: dict[str, list[float]], width: float, positive_score: float) -> str:
    top = max([positive_score, *[max(v) for v in scores_by_band.values() if v]])
    n_bins = int(np.floor(top / width)) + 1
    counts = {b: np.bincount(np.minimum((np.asarray(v) / width).astype(np.int64), n_bins - 1),
                             minlength=n_bins) if v else np.zeros(n_bins, np.int64)
              for b, v in scores_by_band.items()}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["score", *BANDS])
    for i in range(n_bins):
        writer.writerow([f"{i * width:.4f}", *[int(counts[b][i]) for b in BANDS]])
    return buf.getvalue()


def assemble(mined: Path, queries: Path, passages: Path, out_dir: Path, cfg: AssembleConfig,
             embedding_model: str, positive_score: float = 10.0,
             mine_report: Path | None = None) -> AssembleResult:
    """Write ``{train,val}.jsonl``, ``hf/{train,val}``, ``metadata.json``, ``score_distribution.csv``.

    Also writes ``row_index.parquet`` (split, row, query id, kind and source document of every row), which
    :func:`kosparse.validate.validate` uses to check that the splits share no source document.

    Args:
        mined: ``mined.parquet`` of the mine stage.
        queries: ``queries.parquet`` (query text, kind, source document, ``positive_text``).
        passages: ``passages.parquet`` (passage texts and token counts).
        out_dir: ``data/neural_sparse_training``.
        cfg: Split and formatting settings.
        embedding_model: Teacher model name for the metadata.
        positive_score: Score of the positive (for the histogram's range).
        mine_report: ``mine_report.json``; its drops are copied into the metadata.

    Returns:
        Counts and the metadata written.
    """
    m = pq.read_table(mined)
    q = pq.read_table(queries, columns=["query_id", "text", "kind", "source", "doc_id", "positive_text"])
    q_index = {qid: i for i, qid in enumerate(q.column("query_id").to_pylist())}
    q_cols = {name: q.column(name).to_pylist()
              for name in ("text", "kind", "source", "doc_id", "positive_text")}
    wanted = pc.unique(pc.list_flatten(m.column("doc_ids")))
    texts, n_tokens = _passage_texts(passages, wanted)

    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    index: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    dropped: Counter[str] = Counter()
    by_band: dict[str, list[float]] = {b: [] for b in BANDS}
    kinds: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    q_chars: list[int] = []
    d_chars: list[int] = []
    d_tokens: list[int] = []
    docs_per_query: Counter[int] = Counter()
    for qid, doc_ids, scores, bands in zip(m.column("query_id").to_pylist(), m.column("doc_ids").to_pylist(),
                                           m.column("scores").to_pylist(), m.column("bands").to_pylist(),
                                           strict=True):
        i = q_index.get(qid)
        if i is None:
            dropped["query_missing"] += 1
            continue
        if any(d not in texts for d in doc_ids):
            dropped["passage_missing"] += 1
            continue
        order = sorted(range(len(doc_ids)), key=lambda j: (-scores[j], j))
        pos_text = q_cols["positive_text"][i]
        docs = [pos_text if (bands[j] == "positive" and pos_text is not None) else texts[doc_ids[j]]
                for j in order]
        split = split_of(q_cols["source"][i], q_cols["doc_id"][i], cfg.seed, cfg.val_fraction)
        row = {"query": q_cols["text"][i], "docs": docs,
               "scores": [round(float(scores[j]), cfg.score_decimals) for j in order]}
        index[split].append({"split": split, "row": len(out[split]), "query_id": qid,
                             "kind": q_cols["kind"][i], "source": q_cols["source"][i],
                             "doc_id": q_cols["doc_id"][i]})
        out[split].append(row)
        kinds[split][q_cols["kind"][i]] += 1
        docs_per_query[len(docs)] += 1
        q_chars.append(len(row["query"]))
        d_chars.extend(len(d) for d in docs)
        d_tokens.extend(n_tokens[doc_ids[j]] for j in order)
        for j in order:
            by_band[bands[j]].append(round(float(scores[j]), cfg.score_decimals))

    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        (out_dir / f"{split}.jsonl").write_text("".join(dumps_row(r) + "\n" for r in out[split]),
                                                encoding="utf-8")
        _save_hf(out[split], out_dir / "hf" / split)
    pq.write_table(pa.Table.from_pylist(index["train"] + index["val"], schema=ROW_INDEX_SCHEMA),
                   out_dir / "row_index.parquet")
    (out_dir / "score_distribution.csv").write_text(_histogram(by_band, cfg.histogram_bin, positive_score),
                                                    encoding="utf-8")

    mine_drops: dict[str, int] = {}
    if mine_report is not None and mine_report.exists():
        mine_drops = json.loads(mine_report.read_text(encoding="utf-8")).get("dropped", {})
    total = len(out["train"]) + len(out["val"])
    metadata: dict[str, Any] = {
        "total_queries": total,
        "train_samples": len(out["train"]),
        "val_samples": len(out["val"]),
        "docs_per_query": (next(iter(docs_per_query)) if len(docs_per_query) == 1
                           else {str(k): v for k, v in sorted(docs_per_query.items())}),
        "embedding_model": embedding_model,
        "source_datasets": sorted({r["source"] for s in SPLITS for r in index[s]}),
        "format": {"data_type": "kd", "fields": ["query", "docs", "scores"], "sorted": "score descending",
                   "positive_score": positive_score},
        "split": {"by": "source document (source:doc_id of the positive)", "val_fraction": cfg.val_fraction,
                  "seed": cfg.seed,
                  "documents": {s: len({(r["source"], r["doc_id"]) for r in index[s]}) for s in SPLITS}},
        "statistics": {
            "scores_by_band": {b: {k: v for k, v in _stats(v).items() if k in ("n", "min", "mean", "max")}
                               for b, v in by_band.items()},
            "query_kinds": {s: dict(sorted(kinds[s].items())) for s in SPLITS},
            "query_chars": _stats(q_chars),
            "doc_chars": _stats(d_chars),
            "doc_tokens": _stats(d_tokens),
            "dropped": {"mine": mine_drops, "assemble": dict(sorted(dropped.items()))},
        },
    }
    stamp = created_at(cfg)
    if stamp is not None:
        metadata["created_at"] = stamp
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False)
                                           + "\n", encoding="utf-8")
    return AssembleResult(len(out["train"]), len(out["val"]), dict(dropped), metadata)
