"""Stage `xl_teacher`: split the term and sentence pairs, embed the training texts with the teacher once."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from kosparse.config import TeacherConfig, load_section, read_params
from kosparse.embed import EmbedConfig, embed_texts
from kosparse.train import TrainConfig, load_pairs

OUT = Path("data/synonyms/xl_teacher")


def main() -> int:
    """Write ``pairs.json`` (train and held-out pairs, the text order) and ``embeddings.npy`` (float16)."""
    params = read_params()
    cfg = load_section(TrainConfig, "train", params)
    teacher = load_section(TeacherConfig, "teacher", params)
    pairs = load_pairs(Path("data/synonyms/ko_en_terms.jsonl"), Path("data/synonyms/ko_en_parallel.jsonl"), cfg)
    emb = embed_texts(teacher.model_name_or_path, pairs.texts, "query", teacher.query_prefix,
                      EmbedConfig(batch_size=128), show_progress_bar=True)
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(OUT / "embeddings.npy", emb.astype(np.float16))
    (OUT / "pairs.json").write_text(json.dumps(asdict(pairs), ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"xl_teacher: {len(pairs.train_terms):,} term pairs, {len(pairs.train_sentences):,} sentence pairs for "
          f"training ({len(pairs.texts):,} texts embedded); held out {len(pairs.heldout_terms):,} Korean terms, "
          f"{len(pairs.heldout_sentences):,} sentence pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
