"""Stage `index`: document_embeddings.npy -> faiss_index.bin (+ index_report.json with recall@10)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from kosparse.config import load_section
from kosparse.index import IndexConfig, build_index, index_report, save_index

EMB = Path("data/neural_sparse_training/embeddings")


def main() -> int:
    """Run index with the `index` section of params.yaml."""
    cfg = load_section(IndexConfig, "index")
    embeddings = np.load(EMB / "document_embeddings.npy", mmap_mode="r")
    t0 = time.perf_counter()
    index = build_index(embeddings, cfg)
    seconds = time.perf_counter() - t0
    save_index(index, EMB / "faiss_index.bin")
    report = index_report(index, embeddings, cfg, seconds)
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    (EMB / "index_report.json").write_text(text, encoding="utf-8")
    print(f"index: {cfg.kind} over {index.ntotal:,} x {index.d} in {seconds:.1f}s, "
          f"recall@10 {report['recall_at_10']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
