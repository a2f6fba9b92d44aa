"""Phase 2 evaluation: Korean retrieval, ko→en retrieval, English activation and sparsity.

Every figure is computed for the trained student *and* its untrained starting point (the baseline),
on data the student never trained on: the validation rows of phase 1 (split by source document), the
held-out sentence pairs and Korean terms of ``xl_teacher`` (split by Korean text), and — on the offline
default — the sample's English counterpart pages. IR metrics come from ``ir-measures`` (pytrec_eval).

Scoring is exact: sparse vectors are kept as dense ``[n, vocab]`` tensors in blocks and multiplied, which
is what an inverted index computes for dot products.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

MEASURES = ("RR@10", "R@100", "nDCG@10")


@dataclass
class EvalConfig:
    """The ``evaluate`` section.

    Attributes:
        top_k: Top activations of ``sparse(ko)`` searched for an English synonym's tokens.
        max_queries: Most queries per retrieval set (seeded sample; CPU budget).
        max_terms: Most held-out terms for the activation rate.
        batch_size: Encoding batch size.
        probe_terms: Terms whose top-10 tokens before and after training go to ``activation_examples.md``.
        seed: Sampling seed.
    """

    top_k: int = 20
    max_queries: int = 500
    max_terms: int = 1000
    batch_size: int = 32
    probe_terms: list[str] = field(default_factory=lambda: ["머신러닝", "딥러닝", "신경망", "자연어 처리", "검색 엔진",
                                                            "데이터베이스", "운영 체제", "암호화"])
    seed: int = 13


def _encode(model: Any, texts: list[str], query: bool, batch_size: int) -> torch.Tensor:
    fn = model.encode_query if query else model.encode_document
    return fn(texts, convert_to_tensor=True, batch_size=batch_size).to_dense().float()


def retrieval_metrics(model: Any, queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, dict[str, int]],
                      batch_size: int, depth: int = 100) -> dict[str, float]:
    """MRR@10, Recall@100 and nDCG@10 of ``model`` (queries encoded as queries, corpus as documents)."""
    import ir_measures

    qids, dids = list(queries), list(corpus)
    q = _encode(model, [queries[i] for i in qids], True, batch_size)
    d = _encode(model, [corpus[i] for i in dids], False, batch_size)
    run: dict[str, dict[str, float]] = {}
    k = min(depth, len(dids))
    for s in range(0, len(qids), 256):
        scores = q[s:s + 256] @ d.T
        top_s, top_i = torch.topk(scores, k, dim=1)
        for row, qid in enumerate(qids[s:s + 256]):
            # an inverted index never returns a document that shares no term with the query (score 0)
            run[qid] = {dids[int(j)]: float(v) for v, j in zip(top_s[row], top_i[row], strict=True) if v > 0}
    parsed = [ir_measures.parse_measure(m) for m in MEASURES]
    agg = ir_measures.calc_aggregate(parsed, qrels, run)
    out = {str(m): float(agg[m]) for m in parsed}
    out["queries"] = float(len(qids))
    out["documents"] = float(len(dids))
    return out


def sparsity(q: torch.Tensor, d: torch.Tensor) -> dict[str, float]:
    """Average non-zeros of queries and documents and the FLOPS figure of SPLADE.

    ``FLOPS = Σ_t P(q_t > 0) · P(d_t > 0)``: the expected number of multiplications per query–document
    pair in an inverted index.
    """
    pq, pd = (q > 0).float().mean(dim=0), (d > 0).float().mean(dim=0)
    return {"avg_nnz_query": float((q > 0).sum(dim=1).float().mean()),
            "avg_nnz_doc": float((d > 0).sum(dim=1).float().mean()), "flops": float((pq * pd).sum())}


def english_activation(model: Any, terms: list[tuple[str, list[str]]], top_k: int, batch_size: int) -> dict[str, float]:
    """Share of Korean terms whose top-``top_k`` tokens hold a token of an English synonym absent from the input.

    A pair counts when at least one word-piece of one English synonym (special tokens excluded) is among
    the top-``top_k`` activations of ``sparse(ko)`` *and* that English word does not occur in the Korean
    input. Also the mean Jaccard overlap of the top-``top_k`` tokens of ``sparse(ko)`` and ``sparse(en)``.
    """
    if not terms:
        return {"english_activation_rate": 0.0, "topk_jaccard": 0.0, "terms": 0.0}
    tok = model.tokenizer
    specials = set(tok.all_special_ids)
    ko = _encode(model, [k for k, _ in terms], False, batch_size)
    en = _encode(model, [e[0] for _, e in terms], False, batch_size)
    k = min(top_k, ko.shape[1])
    ko_top = torch.topk(ko, k, dim=1)
    en_top = torch.topk(en, k, dim=1)
    hits, jacc = 0, []
    for i, (ko_text, synonyms) in enumerate(terms):
        active = {int(j) for v, j in zip(ko_top.values[i], ko_top.indices[i], strict=True) if v > 0}
        en_active = {int(j) for v, j in zip(en_top.values[i], en_top.indices[i], strict=True) if v > 0}
        ok = False
        for syn in synonyms:
            if syn.lower() in ko_text.lower():
                continue
            ids = {t for t in tok(syn, add_special_tokens=False)["input_ids"] if t not in specials}
            if ids & active:
                ok = True
                break
        hits += ok
        union = active | en_active
        jacc.append(len(active & en_active) / len(union) if union else 0.0)
    return {"english_activation_rate": hits / len(terms), "topk_jaccard": float(np.mean(jacc)),
            "terms": float(len(terms))}


def top_tokens(model: Any, texts: list[str], k: int = 10) -> dict[str, list[tuple[str, float]]]:
    """Top-``k`` tokens with weights of each text's document-side vector."""
    emb = _encode(model, texts, False, 16)
    return {t: [(tok, round(float(w), 3)) for tok, w in row] for t, row in zip(texts, model.decode(emb, top_k=k),
                                                                            strict=True)}


@dataclass
class EvalSets:
    """The held-out data of one evaluation."""

    ko_queries: dict[str, str]
    ko_corpus: dict[str, str]
    ko_qrels: dict[str, dict[str, int]]
    xl: dict[str, tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]]
    terms: list[tuple[str, list[str]]]


def korean_set(val_rows: Iterable[dict[str, Any]], max_queries: int, seed: int
               ) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """Validation queries over the pool of every validation passage; the positive (first doc) is relevant."""
    rows = list(val_rows)
    rng = np.random.default_rng(seed)
    if len(rows) > max_queries:
        rows = [rows[i] for i in sorted(rng.choice(len(rows), max_queries, replace=False))]
    corpus: dict[str, str] = {}
    by_text: dict[str, str] = {}
    queries, qrels = {}, {}
    for i, r in enumerate(rows):
        for doc in r["docs"]:
            if doc not in by_text:
                by_text[doc] = f"d{len(by_text)}"
                corpus[by_text[doc]] = doc
        queries[f"q{i}"] = r["query"]
        qrels[f"q{i}"] = {by_text[r["docs"][0]]: 1}
    return queries, corpus, qrels


def pair_set(pairs: list[tuple[str, str]], max_queries: int, seed: int
             ) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """Korean sides as queries over all English sides; each query's own translation is relevant."""
    rng = np.random.default_rng(seed)
    if len(pairs) > max_queries:
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), max_queries, replace=False))]
    queries = {f"q{i}": ko for i, (ko, _) in enumerate(pairs)}
    corpus = {f"d{i}": en for i, (_, en) in enumerate(pairs)}
    return queries, corpus, {f"q{i}": {f"d{i}": 1} for i in range(len(pairs))}


def sample_pages(folder: Path, max_chars: int = 1000) -> list[tuple[str, str]]:
    """(Korean title, English page) pairs of the sample's help pages with the same id."""
    en: dict[str, str] = {}
    for path in sorted((folder / "en").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            en[r["id"]] = f"{r['title']}\n{r['text']}"[:max_chars]
    out = []
    for path in sorted((folder / "ko").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["id"] in en and re.search("[\uac00-\ud7a3]", r["title"]):
                out.append((r["title"], en[r["id"]]))
    return out


def evaluate_model(model: Any, sets: EvalSets, cfg: EvalConfig) -> dict[str, Any]:
    """All metrics of one model on the held-out sets."""
    out: dict[str, Any] = {"korean": retrieval_metrics(model, sets.ko_queries, sets.ko_corpus, sets.ko_qrels,
                                                       cfg.batch_size)}
    q = _encode(model, list(sets.ko_queries.values()), True, cfg.batch_size)
    d = _encode(model, list(sets.ko_corpus.values()), False, cfg.batch_size)
    out["sparsity"] = sparsity(q, d)
    for name, (qs, corpus, qrels) in sets.xl.items():
        out[f"ko_en_{name}"] = retrieval_metrics(model, qs, corpus, qrels, cfg.batch_size)
    out["activation"] = english_activation(model, sets.terms[:cfg.max_terms], cfg.top_k, cfg.batch_size)
    return out


def activation_examples(before: dict[str, list[tuple[str, float]]], after: dict[str, list[tuple[str, float]]]) -> str:
    """The plan's Before/After table as Markdown."""
    lines = ["# Top-10 activations before and after training", "",
             "| term | before (untrained student) | after (trained student) |", "|---|---|---|"]
    for term in before:
        fmt = lambda row: ", ".join(f"`{t}` {w:.2f}" for t, w in row)  # noqa: E731
        lines.append(f"| {term} | {fmt(before[term])} | {fmt(after.get(term, []))} |")
    return "\n".join(lines) + "\n"


def run_evaluation(student: Any, baseline: Any, sets: EvalSets, cfg: EvalConfig) -> tuple[dict[str, Any], str]:
    """Metrics of both models with their differences, and the activation examples."""
    result = {"student": evaluate_model(student, sets, cfg), "baseline": evaluate_model(baseline, sets, cfg),
              "settings": asdict(cfg)}
    delta: dict[str, Any] = {}
    for section, values in result["student"].items():
        base = result["baseline"].get(section, {})
        delta[section] = {k: v - base.get(k, 0.0) for k, v in values.items() if k in base and k not in
                          ("queries", "documents", "terms")}
    result["delta"] = delta
    examples = activation_examples(top_tokens(baseline, cfg.probe_terms), top_tokens(student, cfg.probe_terms))
    return result, examples
