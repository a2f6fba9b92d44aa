"""Stage `idf`: document frequencies of the student's tokens over the corpus passages -> data/idf/idf.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

from kosparse.config import load_section
from kosparse.student import StudentConfig, idf_weights

PASSAGES = Path("data/interim/passages.parquet")
OUT = Path("data/idf")


def main() -> int:
    """Write ``idf.json`` ({token: weight} over the whole vocabulary) and ``idf_report.json``."""
    from transformers import AutoTokenizer

    cfg = load_section(StudentConfig, "student")
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    backend = tokenizer.backend_tokenizer
    vocab = tokenizer.get_vocab()
    size = max(vocab.values()) + 1
    texts = (t for b in pq.ParquetFile(PASSAGES).iter_batches(columns=["text"]) for t in b.column(0).to_pylist())
    idf = idf_weights(backend, size, texts, tokenizer.all_special_ids)
    id_to_token = {i: t for t, i in vocab.items()}
    OUT.mkdir(parents=True, exist_ok=True)
    weights = {id_to_token[i]: round(float(idf[i]), 6) for i in range(size) if i in id_to_token}
    (OUT / "idf.json").write_text(json.dumps(weights, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    report = {"tokens": len(weights), "vocab_size": len(vocab), "passages": pq.ParquetFile(PASSAGES).metadata.num_rows,
              "min": float(idf.min()), "max": float(idf.max()), "model": cfg.model}
    (OUT / "idf_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"idf: {len(weights):,} tokens over {report['passages']:,} passages -> {OUT / 'idf.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
