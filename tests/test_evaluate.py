"""Evaluation on a bag-of-words sparse model whose scores can be worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from kosparse.evaluate import (
    EvalConfig,
    EvalSets,
    english_activation,
    korean_set,
    pair_set,
    reference_evaluation,
    regression_check,
    retrieval_metrics,
    run_evaluation,
    sample_pages,
    sparsity,
)

VOCAB = ["[CLS]", "서울", "부산", "수도", "항구", "seoul", "capital", "busan", "port", "machine", "learning",
         "머신러닝"]


class BagModel:
    """Sparse vectors = word counts (plus an optional Korean→English expansion table)."""

    def __init__(self, expand: dict[str, list[str]] | None = None) -> None:
        self.expand = expand or {}
        model = self

        class Tok:
            all_special_ids = [0]

            def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
                return {"input_ids": [VOCAB.index(w) for w in text.lower().split() if w in VOCAB]}

        self.tokenizer = Tok()
        self._model = model

    def _vec(self, text: str) -> torch.Tensor:
        v = torch.zeros(len(VOCAB))
        for w in text.lower().split():
            for t in [w, *self.expand.get(w, [])]:
                if t in VOCAB:
                    v[VOCAB.index(t)] += 1.0
        return v

    def encode_query(self, texts: list[str], **_: Any) -> torch.Tensor:
        return torch.stack([self._vec(t) for t in texts]).to_sparse()

    encode_document = encode_query

    def decode(self, emb: torch.Tensor, top_k: int = 10) -> list[list[tuple[str, float]]]:
        out = []
        for row in emb:
            vals, idx = torch.topk(row, min(top_k, len(VOCAB)))
            out.append([(VOCAB[int(i)], float(v)) for v, i in zip(vals, idx, strict=True) if v > 0])
        return out


def test_retrieval_metrics_by_hand() -> None:
    queries = {"q1": "서울 수도", "q2": "항구"}
    corpus = {"d1": "서울 수도", "d2": "부산 항구 항구", "d3": "부산 항구"}
    qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}}  # q2's relevant doc ranks second (d2 has "항구" twice)
    m = retrieval_metrics(BagModel(), queries, corpus, qrels, batch_size=8)
    assert m["RR@10"] == pytest.approx((1.0 + 0.5) / 2)
    assert m["R@100"] == pytest.approx(1.0)
    assert m["queries"] == 2 and m["documents"] == 3


def test_sparsity_and_flops_by_hand() -> None:
    q = torch.tensor([[1.0, 0, 0], [1.0, 1.0, 0]])
    d = torch.tensor([[1.0, 0, 1.0], [0, 0, 1.0]])
    s = sparsity(q, d)
    assert s["avg_nnz_query"] == 1.5 and s["avg_nnz_doc"] == 1.5
    assert s["flops"] == pytest.approx(1.0 * 0.5 + 0.5 * 0.0 + 0.0 * 1.0)


def test_english_activation_counts_only_expansions() -> None:
    terms = [("머신러닝", ["machine learning"]), ("서울", ["capital"]), ("부산", ["port"])]
    plain = english_activation(BagModel(), terms, top_k=5, batch_size=4)
    assert plain["english_activation_rate"] == 0.0
    expanded = BagModel({"머신러닝": ["machine", "learning"], "서울": ["capital"]})
    res = english_activation(expanded, terms, top_k=5, batch_size=4)
    assert res["english_activation_rate"] == pytest.approx(2 / 3) and res["terms"] == 3
    # Jaccard of top tokens: 머신러닝 {머신러닝, machine, learning} vs {machine, learning} = 2/3
    assert res["topk_jaccard"] == pytest.approx((2 / 3 + 1 / 2 + 0.0) / 3)


def test_sets_and_full_run(tmp_path: Path) -> None:
    rows = [{"query": "서울 수도", "docs": ["서울 수도", "부산 항구"]},
            {"query": "항구", "docs": ["부산 항구", "서울 수도"]}]
    queries, corpus, qrels = korean_set(rows, max_queries=10, seed=1)
    assert len(corpus) == 2 and qrels == {"q0": {"d0": 1}, "q1": {"d1": 1}}
    xl = pair_set([("서울", "seoul"), ("부산", "busan port")], max_queries=10, seed=1)
    assert xl[2] == {"q0": {"d0": 1}, "q1": {"d1": 1}}
    for lang, text in (("ko", "서울 수도"), ("en", "seoul capital")):
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "a.jsonl").write_text(json.dumps({"id": "p1", "title": "서울" if lang == "ko" else "Seoul",
                                                             "text": text}, ensure_ascii=False) + "\n")
    assert sample_pages(tmp_path) == [("서울", "Seoul\nseoul capital")]
    sets = EvalSets(queries, corpus, qrels, {"pairs": xl}, [("서울", ["seoul"])])
    trained = BagModel({"서울": ["seoul"], "부산": ["busan"]})
    cfg = EvalConfig(probe_terms=["서울"])
    reference = reference_evaluation(BagModel(), BagModel(), sets, cfg)
    reference = json.loads(json.dumps(reference))  # what the stage reads back from eval_reference.json
    result, examples = run_evaluation(trained, reference, sets, cfg)
    assert result["student"]["ko_en_pairs"]["RR@10"] == 1.0
    assert result["baseline"]["ko_en_pairs"]["RR@10"] == 0.0  # no shared term: nothing retrieved
    assert result["delta"]["activation"]["english_activation_rate"] == 1.0
    assert result["regression"]["difference"] == 0.0 and result["regression"]["passed"]  # same Korean ranking
    assert "| 서울 |" in examples and "`seoul`" in examples
    with pytest.raises(ValueError, match="other `evaluate` settings"):
        run_evaluation(trained, reference, sets, EvalConfig(probe_terms=["부산"]))


def test_regression_check_is_paired_and_fails_beyond_tolerance() -> None:
    reference = {"q1": 1.0, "q2": 0.5, "q3": 1.0, "q4": 0.0}
    trained = {"q1": 0.5, "q2": 0.5, "q3": 1.0, "q4": 0.0}  # one query falls from rank 1 to rank 2
    res = regression_check(trained, reference, "RR@10", tolerance=0.2)
    assert res["difference"] == pytest.approx(-0.125) and res["passed"]
    assert res["stderr"] == pytest.approx(0.125)  # std of [-0.5, 0, 0, 0] (ddof 1) = 0.25, / sqrt(4)
    assert not regression_check(trained, reference, "RR@10", tolerance=0.1)["passed"]
    with pytest.raises(ValueError, match="share no query"):
        regression_check({"a": 1.0}, {"b": 1.0}, "RR@10", 0.1)


def _load_stage(name: str) -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "stages" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"stage_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("difference, expected_rc", [(-0.2, 1), (0.01, 0)])
def test_evaluate_stage_fails_on_regression_after_writing_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    difference: float, expected_rc: int) -> None:
    import sentence_transformers.sparse_encoder as se

    stage = _load_stage("evaluate")
    (tmp_path / "params.yaml").write_text("evaluate:\n  regression_tolerance: 0.05\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "eval_reference.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    regression = {"measure": "RR@10", "difference": difference, "stderr": 0.01, "tolerance": 0.05,
                  "passed": difference >= -0.05, "retrieval_only": 0.4}
    korean = {"korean": {"RR@10": 0.4}, "ko_en_heldout_sentences": {"RR@10": 0.5},
              "activation": {"english_activation_rate": 0.3}}
    monkeypatch.setattr(se, "SparseEncoder", lambda *a, **k: object())
    monkeypatch.setattr(stage, "load_eval_sets", lambda cfg: None)
    monkeypatch.setattr(stage, "run_evaluation", lambda *a: ({"student": korean, "baseline": korean,
                                                                "regression": regression}, "examples\n"))
    assert stage.main() == expected_rc
    written = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert written["regression"]["difference"] == difference  # the metrics are there either way
