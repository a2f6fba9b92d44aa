"""Stage `evaluate`: the trained student and its starting point on held-out data -> metrics/eval.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kosparse.config import load_section
from kosparse.evaluate import EvalConfig, EvalSets, korean_set, pair_set, run_evaluation, sample_pages

OUT = Path("metrics")


def main() -> int:
    """Evaluate ``models/student`` against ``models/student_init`` with the `evaluate` section."""
    from datasets import load_from_disk
    from sentence_transformers.sparse_encoder import SparseEncoder

    cfg = load_section(EvalConfig, "evaluate")
    pairs = json.loads(Path("data/synonyms/xl_teacher/pairs.json").read_text(encoding="utf-8"))
    queries, corpus, qrels = korean_set(load_from_disk("data/neural_sparse_training/hf/val"), cfg.max_queries,
                                        cfg.seed)
    xl = {"heldout_sentences": pair_set([tuple(p) for p in pairs["heldout_sentences"]], cfg.max_queries, cfg.seed)}
    pages = sample_pages(Path("data/raw/sample"))
    if pages:
        xl["sample_pages"] = pair_set(pages, cfg.max_queries, cfg.seed)
    terms = [(k, list(e)) for k, e in pairs["heldout_terms"]]
    sets = EvalSets(queries, corpus, qrels, xl, terms)
    student = SparseEncoder("models/student", device="cpu")
    baseline = SparseEncoder("models/student_init", device="cpu")
    result, examples = run_evaluation(student, baseline, sets, cfg)
    OUT.mkdir(exist_ok=True)
    (OUT / "eval.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (OUT / "activation_examples.md").write_text(examples, encoding="utf-8")
    s, b = result["student"], result["baseline"]
    print(f"evaluate: Korean MRR@10 {s['korean']['RR@10']:.3f} (baseline {b['korean']['RR@10']:.3f}); ko->en "
          f"MRR@10 {s['ko_en_heldout_sentences']['RR@10']:.3f} (baseline {b['ko_en_heldout_sentences']['RR@10']:.3f}); "
          f"English activation {s['activation']['english_activation_rate']:.1%} "
          f"(baseline {b['activation']['english_activation_rate']:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
