"""Validate: check the assembled ``kd`` data row by row and as the trainer will read it.

Row checks (``train.jsonl`` and ``val.jsonl``): the schema ``{"query": str, "docs": [str],
"scores": [number]}``, equal lengths, at least two docs, scores sorted descending, the positive first
with ``positive_score`` and nowhere else, no duplicate doc (normalised text) in a row, the positive's
text absent from its negatives, and every score inside its band with bands in order
(positive > hard > related > easy).

Dataset checks: ``row_index.parquet`` matches the row counts and no source document has rows in both
splits; ``hf/train`` and ``hf/val`` load with ``datasets.load_from_disk`` and hold the same rows as the
JSON Lines; and the trainer's ``kd`` grouping (``KnowledgeDistillDataset`` with ``shuffle=False``:
``step = n // k`` groups ``[i, i + step, ..., i + (k-1) * step]``, dropping the last ``n % k`` docs and
rows with fewer than ``k`` docs) is applied for each ``k`` in ``group_sizes``, reporting how many rows
survive and that group 0 starts with the positive (the anchor of ``marginmse``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from kosparse.config import ConfigError
from kosparse.mine import BANDS, normalize_for_hash

SPLITS = ("train", "val")
CHECKS = ("schema", "length_mismatch", "too_few_docs", "not_sorted", "positive_not_first", "duplicate_doc",
          "positive_in_negatives", "band_order", "split_overlap", "row_index_mismatch", "hf_mismatch")
"""Violation classes, in the order rows are checked."""


class ValidationError(RuntimeError):
    """The assembled data has violations (the message names the first ones)."""


@dataclass
class ValidateConfig:
    """The ``validate`` section.

    Attributes:
        group_sizes: Values of the trainer's ``sample_num_one_query`` to check the grouping for.
        max_examples: Violations listed in the report (all are counted).
    """

    group_sizes: list[int] = field(default_factory=lambda: [2, 4])
    max_examples: int = 20

    def __post_init__(self) -> None:
        if not self.group_sizes or any(k < 2 for k in self.group_sizes):
            raise ConfigError(f"validate.group_sizes: need values >= 2 (the trainer asserts it), got "
                              f"{self.group_sizes}")
        if self.max_examples < 1:
            raise ConfigError("validate.max_examples: must be >= 1")


@dataclass
class Violation:
    """One failed check."""

    split: str
    row: int
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.split}[{self.row}] {self.check}: {self.detail}"


@dataclass
class ValidationReport:
    """What :func:`validate` found (written to ``validation_report.json``)."""

    ok: bool = True
    rows: dict[str, int] = field(default_factory=dict)
    violations: dict[str, int] = field(default_factory=dict)
    first_violations: list[str] = field(default_factory=list)
    split_documents: dict[str, int] = field(default_factory=dict)
    hf: dict[str, Any] = field(default_factory=dict)
    grouping: dict[str, Any] = field(default_factory=dict)


def band_of(score: float, bands: dict[str, tuple[float, float]]) -> int | None:
    """Index (into :data:`~kosparse.mine.BANDS`) of the band holding ``score``, or ``None``.

    Args:
        score: A score.
        bands: ``{band: (low, high)}`` (the positive's interval is a point).

    Returns:
        The band index.
    """
    for i, name in enumerate(BANDS):
        lo, hi = bands[name]
        if lo <= score <= hi:
            return i
    return None


def check_row(row: Any, bands: dict[str, tuple[float, float]],
              positive_score: float) -> list[tuple[str, str]]:
    """All violations of one row.

    Args:
        row: A parsed JSON Lines record.
        bands: Score interval per band.
        positive_score: The positive's score.

    Returns:
        ``(check, detail)`` pairs; empty when the row is valid.
    """
    if not isinstance(row, dict) or set(row) != {"query", "docs", "scores"}:
        keys = sorted(row) if isinstance(row, dict) else type(row).__name__
        return [("schema", f"expected keys ['docs', 'query', 'scores'], got {keys}")]
    query, docs, scores = row["query"], row["docs"], row["scores"]
    if not isinstance(query, str) or not query.strip():
        return [("schema", "query must be a non-empty string")]
    if not isinstance(docs, list) or not all(isinstance(d, str) and d.strip() for d in docs):
        return [("schema", "docs must be a list of non-empty strings")]
    if not isinstance(scores, list) or not all(
            isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s) for s in scores):
        return [("schema", "scores must be a list of finite numbers")]
    if len(docs) != len(scores):
        return [("length_mismatch", f"{len(docs)} docs, {len(scores)} scores")]
    if len(docs) < 2:
        return [("too_few_docs", f"{len(docs)} docs; a row needs the positive and a negative")]
    out: list[tuple[str, str]] = []
    drops = [i for i in range(1, len(scores)) if scores[i] > scores[i - 1]]
    if drops:
        i = drops[0]
        out.append(("not_sorted", f"scores[{i}]={scores[i]} > scores[{i - 1}]={scores[i - 1]}"))
    later = [i for i, s in enumerate(scores[1:], 1) if s == positive_score]
    if scores[0] != positive_score or later:
        out.append(("positive_not_first",
                    f"scores[0]={scores[0]}; positive score {positive_score} also at {later}"))
    keys = [normalize_for_hash(d) for d in docs]
    if keys[0] in keys[1:]:
        out.append(("positive_in_negatives", f"the positive's text is also docs[{keys.index(keys[0], 1)}]"))
    seen: dict[str, int] = {}
    for i, key in enumerate(keys[1:], 1):
        if key in seen:
            out.append(("duplicate_doc", f"docs[{i}] repeats docs[{seen[key]}]"))
            break
        seen[key] = i
    found = [band_of(s, bands) for s in scores]
    idx = [b for b in found if b is not None]
    if len(idx) < len(found):
        i = found.index(None)
        out.append(("band_order", f"scores[{i}]={scores[i]} is in no band"))
    else:
        bad = [i for i in range(1, len(idx)) if idx[i] < idx[i - 1]]
        if bad:
            i = bad[0]
            out.append(("band_order", f"docs[{i}] is {BANDS[idx[i]]} after {BANDS[idx[i - 1]]}"))
    return out


def kd_groups(docs: list[str], scores: list[float], k: int) -> list[tuple[list[str], list[float]]]:
    """The trainer's ``kd`` grouping of one row (``KnowledgeDistillDataset``, ``shuffle=False``).

    Args:
        docs: The row's docs.
        scores: The row's scores.
        k: ``sample_num_one_query``.

    Returns:
        ``n // k`` groups ``[i, i + step, ...]`` of ``k`` docs each (none when ``n < k``).
    """
    step = len(scores) // k
    return [([docs[j * step + i] for j in range(k)], [scores[j * step + i] for j in range(k)])
            for i in range(step)]


def _read_jsonl(path: Path, split: str, violations: list[Violation]) -> list[Any]:
    rows: list[Any] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                violations.append(Violation(split, n, "schema", f"not JSON: {exc.msg}"))
                rows.append(None)
    return rows


def validate(out_dir: Path, report_path: Path, bands: dict[str, tuple[float, float]],
             positive_score: float = 10.0, cfg: ValidateConfig | None = None) -> ValidationReport:
    """Validate ``out_dir`` (the assemble stage's folder) and write ``report_path``.

    Args:
        out_dir: Folder with ``{train,val}.jsonl``, ``hf/{train,val}`` and ``row_index.parquet``.
        report_path: Output ``validation_report.json``.
        bands: Score interval per band (``MineConfig.bands``).
        positive_score: The positive's score.
        cfg: Grouping sizes and report length.

    Returns:
        The report; ``report.ok`` is False when any check failed.
    """
    from datasets import load_from_disk

    cfg = cfg or ValidateConfig()
    violations: list[Violation] = []
    rows: dict[str, list[Any]] = {}
    for split in SPLITS:
        rows[split] = _read_jsonl(out_dir / f"{split}.jsonl", split, violations)
        for n, row in enumerate(rows[split]):
            if row is not None:
                violations.extend(Violation(split, n, c, d) for c, d in check_row(row, bands, positive_score))

    index = pq.read_table(out_dir / "row_index.parquet").to_pylist()
    docs_of: dict[str, set[tuple[str, str]]] = {s: set() for s in SPLITS}
    for split in SPLITS:
        entries = [r for r in index if r["split"] == split]
        if len(entries) != len(rows[split]) or [r["row"] for r in entries] != list(range(len(entries))):
            violations.append(Violation(
                split, -1, "row_index_mismatch",
                f"row_index has {len(entries)} rows, {split}.jsonl {len(rows[split])}"))
        docs_of[split] = {(r["source"], r["doc_id"]) for r in entries}
    shared = sorted(docs_of["train"] & docs_of["val"])
    violations.extend(Violation("val", -1, "split_overlap", f"source document {s}:{d} is in train and val")
                      for s, d in shared)

    hf: dict[str, Any] = {}
    grouping: dict[str, Any] = {str(k): {"rows": 0, "rows_surviving": 0, "groups": 0, "docs_dropped": 0,
                                         "group0_starts_with_positive": True, "anchors_positive": 0}
                                for k in cfg.group_sizes}
    for split in SPLITS:
        ds = load_from_disk(str(out_dir / "hf" / split))
        hf_rows = ds.data.table.to_pylist() if len(ds) else []
        hf[split] = {"rows": len(ds), "columns": sorted(ds.column_names)}
        mismatch = next((i for i, (a, b) in enumerate(zip(hf_rows, rows[split], strict=False)) if a != b),
                        None)
        if len(hf_rows) != len(rows[split]) or mismatch is not None:
            detail = f"hf/{split} has {len(hf_rows)} rows, {split}.jsonl {len(rows[split])}"
            if mismatch is not None:
                detail += f"; first differing row {mismatch}"
            violations.append(Violation(split, -1 if mismatch is None else mismatch, "hf_mismatch", detail))
        for k in cfg.group_sizes:
            g = grouping[str(k)]
            for row in hf_rows:
                groups = kd_groups(row["docs"], row["scores"], k)
                g["rows"] += 1
                g["rows_surviving"] += bool(groups)
                g["groups"] += len(groups)
                g["docs_dropped"] += len(row["docs"]) - k * len(groups)
                g["anchors_positive"] += sum(s[0] == positive_score for _, s in groups)
                if groups and groups[0][1][0] != positive_score:
                    g["group0_starts_with_positive"] = False

    counts = Counter(v.check for v in violations)
    order = {c: i for i, c in enumerate(CHECKS)}
    ranked = sorted(violations, key=lambda v: (order.get(v.check, len(CHECKS)), v.split, v.row))
    report = ValidationReport(
        ok=not violations, rows={s: len(rows[s]) for s in SPLITS},
        violations={c: counts.get(c, 0) for c in CHECKS},
        first_violations=[str(v) for v in ranked[:cfg.max_examples]],
        split_documents={**{s: len(docs_of[s]) for s in SPLITS}, "shared": len(shared)},
        hf=hf, grouping=grouping)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(asdict(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                           encoding="utf-8")
    return report


def raise_on_violations(report: ValidationReport, shown: int = 5) -> None:
    """Raise :class:`ValidationError` naming the first violations when the report is not ok.

    Args:
        report: A validation report.
        shown: Violations named in the message.

    Raises:
        ValidationError: If ``report.ok`` is False.
    """
    if report.ok:
        return
    total = sum(report.violations.values())
    counts = ", ".join(f"{c}={n}" for c, n in report.violations.items() if n)
    first = "\n  ".join(report.first_violations[:shown])
    raise ValidationError(f"{total} violation(s) ({counts}); first:\n  {first}")
