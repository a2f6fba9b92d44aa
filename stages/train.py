"""Stage `train`: the SPLADE student on mixed batches -> models/student (+ dvclive metrics/train)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from kosparse.config import load_section, read_params
from kosparse.student import StudentConfig
from kosparse.train import LossConfig, PairData, TrainConfig, train_student

XL = Path("data/synonyms/xl_teacher")
OUT = Path("models/student")


def main() -> int:
    """Train with the `student`, `train` and `loss` sections of params.yaml."""
    from datasets import load_from_disk

    params = read_params()
    student = load_section(StudentConfig, "student", params)
    cfg = load_section(TrainConfig, "train", params)
    loss = load_section(LossConfig, "loss", params)
    raw = json.loads((XL / "pairs.json").read_text(encoding="utf-8"))
    pairs = PairData(raw["texts"], [tuple(p) for p in raw["train_terms"]], [tuple(p) for p in raw["train_sentences"]],
                     [(k, list(e)) for k, e in raw["heldout_terms"]], [tuple(p) for p in raw["heldout_sentences"]])
    emb = np.load(XL / "embeddings.npy").astype(np.float32)
    retrieval = load_from_disk("data/neural_sparse_training/hf/train")
    probe_docs = [r["docs"][0] for r in retrieval.select(range(min(8, len(retrieval))))]
    start = "models/student_init" if student.build != "none" else student.model
    idf_path = Path("data/idf/idf.json")
    idf = json.loads(idf_path.read_text(encoding="utf-8")) if cfg.query_side == "inference_free" else None
    report = train_student(start, retrieval, pairs, emb, OUT, cfg, loss, Path("metrics/train"), probe_docs, idf)
    final = report.final
    print(f"train: {report.steps} steps in {report.seconds:.0f}s on {report.retrieval_rows:,} retrieval rows, "
          f"{report.term_pairs:,} term pairs, {report.sentence_pairs:,} sentence pairs; final avg nnz "
          f"query {final.get('query', {}).get('avg_nnz', 0):.0f}, doc {final.get('doc', {}).get('avg_nnz', 0):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
