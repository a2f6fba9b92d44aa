"""``kosparse encode INPUT OUTPUT``: sparse vectors ``{token: weight}`` of a file of texts, as JSONL for an
OpenSearch ``rank_features`` bulk load.

INPUT is a ``.txt`` file (one text per line; the id is the line number) or a ``.jsonl`` file of objects with a
``text`` string and optionally an ``id`` (other fields are kept). Each output line is the input object plus
``FIELD: {token: weight}`` — weights rounded to ``--decimals`` and zeros dropped (``rank_features`` takes
positive values only). Vectors get the same post-processing as the exported model (special tokens zeroed,
``--prune-ratio``), so they equal what OpenSearch's ingest pipeline would store with ``sparse_encoding.zip``.

A line that is not valid JSON, or has no non-empty ``text`` string, goes to ``OUTPUT.rejects.jsonl`` with its
line number and reason; the command fails when every line is rejected.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_texts(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """``(line number, row or None, reason)`` for each line of ``path`` (``reason`` is ``""`` for a good row)."""
    jsonl = path.suffix == ".jsonl"
    with path.open(encoding="utf-8", errors="strict") as fh:
        for n, line in enumerate(fh, start=1):
            line = line.rstrip("\n")
            if not jsonl:
                if line.strip():
                    yield n, {"id": str(n), "text": line}, ""
                else:
                    yield n, None, "empty line"
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield n, None, f"invalid JSON: {e.msg}"
                continue
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
                yield n, None, "no non-empty 'text' string"
                continue
            row.setdefault("id", str(n))
            yield n, row, ""


def to_feature_dict(tokens: list[str], weights: list[float], decimals: int) -> dict[str, float]:
    """``{token: weight}`` of the non-zero weights, rounded (a weight that rounds to 0 is dropped)."""
    out: dict[str, float] = {}
    for tok, w in zip(tokens, weights, strict=True):
        r = round(float(w), decimals)
        if r > 0:
            out[tok] = r
    return out


def encode_file(model: Any, src: Path, dst: Path, field: str, query: bool, prune_ratio: float, batch_size: int,
                decimals: int) -> dict[str, int]:
    """Encode ``src`` into ``dst`` (see the module docstring); returns the counts of written and rejected rows."""
    import torch

    from kosparse.export import ExportConfig, reference_vectors

    cfg = ExportConfig(sparse_prune_ratio=prune_ratio)
    vocab = model.tokenizer.convert_ids_to_tokens(list(range(len(model.tokenizer))))
    rejects_path = dst.with_name(dst.name + ".rejects.jsonl")
    counts = {"written": 0, "rejected": 0}
    batch: list[dict[str, Any]] = []

    def flush(out: Any) -> None:
        if not batch:
            return
        emb = reference_vectors(model, [r["text"] for r in batch], cfg, query=query, batch_size=batch_size)
        for row, vec in zip(batch, emb, strict=True):
            idx = torch.nonzero(vec, as_tuple=True)[0].tolist()
            row[field] = to_feature_dict([vocab[i] for i in idx], vec[idx].tolist(), decimals)
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        counts["written"] += len(batch)
        batch.clear()

    with dst.open("w", encoding="utf-8") as out, rejects_path.open("w", encoding="utf-8") as rej:
        for n, row, reason in read_texts(src):
            if row is None:
                rej.write(json.dumps({"file": str(src), "line": n, "reason": reason}, ensure_ascii=False) + "\n")
                counts["rejected"] += 1
                continue
            batch.append(row)
            if len(batch) >= batch_size:
                flush(out)
        flush(out)
    if not counts["rejected"]:
        rejects_path.unlink()
    return counts


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and encode the file."""
    parser = argparse.ArgumentParser(prog="kosparse encode", description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help=".txt (one text per line) or .jsonl (objects with 'text')")
    parser.add_argument("output", type=Path, help="JSONL to write")
    parser.add_argument("--model", default="models/student", help="SparseEncoder folder or hub id")
    parser.add_argument("--field", default="passage_embedding", help="rank_features field name")
    parser.add_argument("--query", action="store_true", help="encode with the query side")
    parser.add_argument("--prune-ratio", type=float, default=0.0, help="the export's sparse_prune_ratio")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--decimals", type=int, default=4)
    args = parser.parse_args(argv)
    if not args.input.is_file():
        print(f"kosparse encode: no such file: {args.input}", file=sys.stderr)
        return 2
    from sentence_transformers.sparse_encoder import SparseEncoder

    model = SparseEncoder(args.model, device="cpu")
    counts = encode_file(model, args.input, args.output, args.field, args.query, args.prune_ratio, args.batch_size,
                         args.decimals)
    print(f"kosparse encode: {counts['written']:,} vectors -> {args.output}; {counts['rejected']:,} rejected"
          + (f" (reasons in {args.output}.rejects.jsonl)" if counts["rejected"] else ""))
    return 0 if counts["written"] or not counts["rejected"] else 1


if __name__ == "__main__":
    sys.exit(main())
