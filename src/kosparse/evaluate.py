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

from kosparse.sample import bilingual_pages

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
        regression_measure: Korean measure of the regression check (an ir-measures name).
        regression_tolerance: Largest allowed drop of ``regression_measure`` of the trained student below
            the retrieval-only student (absolute); a larger drop fails the ``evaluate`` stage.
    """

    top_k: int = 20
    max_queries: int = 500
    max_terms: int = 1000
    batch_size: int = 32
    probe_terms: list[str] = field(default_factory=lambda: ["머신러닝", "딥러닝", "신경망", "자연어 처리", "검색 엔진",
                                                            "데이터베이스", "운영 체제", "암호화"])
    seed: int = 13
    regression_measure: str = "RR@10"
    regression_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if self.regression_tolerance < 0:
            raise ValueError(f"evaluate.regression_tolerance must be >= 0, got {self.regression_tolerance}")


def _encode(model: Any, texts: list[str], query: bool, batch_size: int) -> torch.Tensor:
    fn = model.encode_query if query else model.encode_document
    return fn(texts, convert_to_tensor=True, batch_size=batch_size).to_dense().float()


def retrieval_run(q: torch.Tensor, d: torch.Tensor, qids: list[str], dids: list[str], depth: int = 100
                  ) -> dict[str, dict[str, float]]:
    """The top-``depth`` documents of each query by dot product of encoded queries ``q`` and documents ``d``."""
    run: dict[str, dict[str, float]] = {}
    k = min(depth, len(dids))
    for s in range(0, len(qids), 256):
        scores = q[s:s + 256] @ d.T
        top_s, top_i = torch.topk(scores, k, dim=1)
        for row, qid in enumerate(qids[s:s + 256]):
            # an inverted index never returns a document that shares no term with the query (score 0)
            run[qid] = {dids[int(j)]: float(v) for v, j in zip(top_s[row], top_i[row], strict=True) if v > 0}
    return run


def per_query(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], measure: str = "RR@10"
              ) -> dict[str, float]:
    """``measure`` of every query of ``qrels`` (0 for a query with nothing retrieved)."""
    import ir_measures

    m = ir_measures.parse_measure(measure)
    values = {qid: 0.0 for qid in qrels}
    for r in ir_measures.iter_calc([m], qrels, run):
        values[r.query_id] = float(r.value)
    return values


def _metrics(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], n_docs: int) -> dict[str, float]:
    import ir_measures

    parsed = [ir_measures.parse_measure(m) for m in MEASURES]
    agg = ir_measures.calc_aggregate(parsed, qrels, run)
    out = {str(m): float(agg[m]) for m in parsed}
    out["queries"] = float(len(qrels))
    out["documents"] = float(n_docs)
    return out


def retrieval_metrics(model: Any, queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, dict[str, int]],
                      batch_size: int, depth: int = 100) -> dict[str, float]:
    """MRR@10, Recall@100 and nDCG@10 of ``model`` (queries encoded as queries, corpus as documents)."""
    qids, dids = list(queries), list(corpus)
    q = _encode(model, [queries[i] for i in qids], True, batch_size)
    d = _encode(model, [corpus[i] for i in dids], False, batch_size)
    return _metrics(retrieval_run(q, d, qids, dids, depth), qrels, len(dids))


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
    return [(ko["title"], f"{en['title']}\n{en['text']}"[:max_chars]) for ko, en in bilingual_pages(folder)
            if en is not None and re.search("[\uac00-\ud7a3]", ko["title"])]


@dataclass
class ModelResult:
    """One model's metrics (``eval.json``) and its per-query Korean values (for the paired regression check)."""

    metrics: dict[str, Any]
    korean_per_query: dict[str, float]


def evaluate_model(model: Any, sets: EvalSets, cfg: EvalConfig) -> ModelResult:
    """All metrics of one model on the held-out sets (each text encoded once)."""
    qids, dids = list(sets.ko_queries), list(sets.ko_corpus)
    q = _encode(model, [sets.ko_queries[i] for i in qids], True, cfg.batch_size)
    d = _encode(model, [sets.ko_corpus[i] for i in dids], False, cfg.batch_size)
    run = retrieval_run(q, d, qids, dids)
    out: dict[str, Any] = {"korean": _metrics(run, sets.ko_qrels, len(dids)), "sparsity": sparsity(q, d)}
    del q, d
    for name, (qs, corpus, qrels) in sets.xl.items():
        out[f"ko_en_{name}"] = retrieval_metrics(model, qs, corpus, qrels, cfg.batch_size)
    out["activation"] = english_activation(model, sets.terms[:cfg.max_terms], cfg.top_k, cfg.batch_size)
    return ModelResult(out, per_query(run, sets.ko_qrels, cfg.regression_measure))


def regression_check(trained: dict[str, float], reference: dict[str, float], measure: str, tolerance: float
                     ) -> dict[str, Any]:
    """Paired comparison of the trained student with the retrieval-only student on the same Korean queries.

    ``difference = mean_q(trained_q - reference_q)``; ``stderr`` is the standard error of the paired
    differences, so a reader can tell a drop from noise. ``passed`` is ``difference >= -tolerance``.
    """
    qids = sorted(set(trained) & set(reference))
    if not qids:
        raise ValueError("regression check: the trained and retrieval-only runs share no query")
    diff = np.array([trained[q] - reference[q] for q in qids], dtype=np.float64)
    mean = float(diff.mean())
    stderr = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return {"measure": measure, "trained": float(np.mean([trained[q] for q in qids])),
            "retrieval_only": float(np.mean([reference[q] for q in qids])),
            "difference": mean, "stderr": stderr, "queries": len(qids), "tolerance": tolerance,
            "passed": bool(mean >= -tolerance)}


def _delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section, values in a.items():
        base = b.get(section, {})
        out[section] = {k: v - base.get(k, 0.0) for k, v in values.items() if k in base and k not in
                        ("queries", "documents", "terms")}
    return out


def activation_examples(before: dict[str, list[tuple[str, float]]], after: dict[str, list[tuple[str, float]]]) -> str:
    """The plan's Before/After table as Markdown."""
    lines = ["# Top-10 activations before and after training", "",
             "| term | before (untrained student) | after (trained student) |", "|---|---|---|"]
    for term in before:
        fmt = lambda row: ", ".join(f"`{t}` {w:.2f}" for t, w in row)  # noqa: E731
        lines.append(f"| {term} | {fmt(before[term])} | {fmt(after.get(term, []))} |")
    return "\n".join(lines) + "\n"


def reference_evaluation(baseline: Any, retrieval_only: Any, sets: EvalSets, cfg: EvalConfig) -> dict[str, Any]:
    """The models every run of a sweep compares with, evaluated once (the ``evaluate_reference`` stage).

    ``baseline`` is the untrained starting point; ``retrieval_only`` the student trained without pairs
    (``train_retrieval_only``). Also keeps their per-query Korean values and the baseline's probe tokens.
    """
    base, ro = evaluate_model(baseline, sets, cfg), evaluate_model(retrieval_only, sets, cfg)
    return {"baseline": base.metrics, "retrieval_only": ro.metrics,
            "korean_per_query": {"baseline": base.korean_per_query, "retrieval_only": ro.korean_per_query},
            "probe_tokens_before": top_tokens(baseline, cfg.probe_terms), "settings": asdict(cfg)}


def run_evaluation(student: Any, reference: dict[str, Any], sets: EvalSets, cfg: EvalConfig
                   ) -> tuple[dict[str, Any], str]:
    """The trained student's metrics next to the reference models', the regression check and the
    activation examples.

    Args:
        student: The trained student.
        reference: :func:`reference_evaluation` of the same sets and settings.
        sets: Held-out sets.
        cfg: Settings.

    Returns:
        ``(eval.json contents, activation_examples.md)``.
    """
    if reference.get("settings") != asdict(cfg):
        raise ValueError("the reference evaluation was made with other `evaluate` settings; rerun evaluate_reference")
    res = evaluate_model(student, sets, cfg)
    result: dict[str, Any] = {"student": res.metrics, "baseline": reference["baseline"],
                              "retrieval_only": reference["retrieval_only"]}
    result["delta"] = _delta(res.metrics, reference["baseline"])
    result["delta_vs_retrieval_only"] = _delta(res.metrics, reference["retrieval_only"])
    result["regression"] = regression_check(res.korean_per_query, reference["korean_per_query"]["retrieval_only"],
                                            cfg.regression_measure, cfg.regression_tolerance)
    result["settings"] = asdict(cfg)
    before = {t: [(str(tok), float(w)) for tok, w in row] for t, row in reference["probe_tokens_before"].items()}
    examples = activation_examples(before, top_tokens(student, cfg.probe_terms))
    return result, examples


def load_eval_sets(cfg: EvalConfig, val_dir: Path = Path("data/neural_sparse_training/hf/val"),
                   xl_dir: Path = Path("data/synonyms/xl_teacher"), sample_dir: Path = Path("data/raw/sample")
                   ) -> EvalSets:
    """The held-out sets of the pipeline's outputs (the sample's pages only where the sample exists)."""
    from datasets import load_from_disk

    pairs = json.loads((xl_dir / "pairs.json").read_text(encoding="utf-8"))
    queries, corpus, qrels = korean_set(load_from_disk(str(val_dir)), cfg.max_queries, cfg.seed)
    xl = {"heldout_sentences": pair_set([tuple(p) for p in pairs["heldout_sentences"]], cfg.max_queries, cfg.seed)}
    pages = sample_pages(sample_dir)
    if pages:
        xl["sample_pages"] = pair_set(pages, cfg.max_queries, cfg.seed)
    return EvalSets(queries, corpus, qrels, xl, [(k, list(e)) for k, e in pairs["heldout_terms"]])
