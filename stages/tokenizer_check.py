"""Stage `tokenizer_check`: how the student's tokenizer treats Hangul -> metrics/student_tokenizer.json.

For the hub student (`student=opensearch_multilingual`, an uncased mBERT vocabulary) this is the check that
Korean is not reduced to Jamo pieces before a GPU-hour is spent training it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from kosparse.config import load_section
from kosparse.student import StudentConfig
from kosparse.tokenization import hangul_report

OUT = Path("metrics/student_tokenizer.json")
PROBES = ["머신러닝", "기계 학습", "검색 엔진", "데이터베이스", "서울은 대한민국의 수도이다", "한국어 위키백과"]


def main() -> int:
    """Report on the probe terms and on 200 seeded passages of the corpus."""
    from transformers import AutoTokenizer

    cfg = load_section(StudentConfig, "student")
    name = "models/student_init" if cfg.build != "none" else cfg.model
    tokenizer = AutoTokenizer.from_pretrained(name)
    passages = pd.read_parquet("data/interim/passages.parquet", columns=["text"])["text"]
    sample = passages.sample(n=min(200, len(passages)), random_state=13).str.slice(0, 500).tolist()
    report = {"model": name, "probes": hangul_report(tokenizer, PROBES),
              "passages": hangul_report(tokenizer, sample, examples=0)}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    p = report["passages"]
    print(f"tokenizer_check: {name}: {p['syllables_kept']:.1%} of Hangul syllables kept by the normaliser, "
          f"{p['jamo_token_share']:.1%} of Hangul tokens are Jamo, {p['pieces_per_korean_word']:.2f} pieces per "
          f"Korean word, [UNK] {p['unk_share']:.2%}")
    if p["decomposes_hangul"]:
        print(f"tokenizer_check: WARNING: {name} decomposes Hangul syllables into Jamo (NFD accent stripping of an "
              "uncased vocabulary); its Korean vectors are over Jamo pieces. Consider student=offline_e5_mlm or a "
              "cased/XLM-R student.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
