"""Phase 2 training: the mixed batch sampler, the pair split, the dataset layout and a tiny real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kosparse.train import (
    KIND_RETRIEVAL,
    KIND_SENTENCE,
    KIND_TERM,
    LossConfig,
    MixedBatchSampler,
    PairData,
    TrainConfig,
    build_dataset,
    heldout,
    load_pairs,
    retrieval_only,
)


def test_mixed_batches_hold_the_configured_share() -> None:
    sampler = MixedBatchSampler(n_retrieval=50, n_terms=30, n_sentences=20, batch_size=10, ratio=0.2,
                                sentence_share=0.5, steps=40, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 40
    for b in batches:
        assert len(b) == 10 and len(set(b)) == 10
        assert sum(i < 50 for i in b) == 8  # retrieval rows
        assert sum(50 <= i < 80 for i in b) == 1 and sum(i >= 80 for i in b) == 1  # one term, one sentence
    assert {i for b in batches for i in b if i < 50} == set(range(50))  # every retrieval row is visited
    assert batches == list(MixedBatchSampler(50, 30, 20, 10, 0.2, 0.5, 40, seed=1))  # seeded
    sampler.set_epoch(1)
    assert list(sampler) != batches
    no_pairs = MixedBatchSampler(50, 0, 0, 10, 0.3, 0.5, 3, seed=1)
    assert all(all(i < 50 for i in b) for b in no_pairs)  # lambda_xl-only ablations: ratio 0 / no pairs
    with pytest.raises(ValueError, match="no retrieval rows"):
        MixedBatchSampler(0, 10, 10, 10, 0.2, 0.5, 3, seed=1)


def _write_pairs(tmp_path: Path) -> tuple[Path, Path]:
    terms = tmp_path / "terms.jsonl"
    terms.write_text("".join(json.dumps({"ko": f"용어{i}", "en": [f"term {i}", f"word {i}"], "category": "ml",
                                         "sources": ["curated"]}, ensure_ascii=False) + "\n" for i in range(200)),
                     encoding="utf-8")
    parallel = tmp_path / "parallel.jsonl"
    parallel.write_text("".join(json.dumps({"ko": f"문장 {i}입니다.", "en": f"This is sentence {i}.",
                                            "source": "t"}, ensure_ascii=False) + "\n" for i in range(100)),
                        encoding="utf-8")
    return terms, parallel


def test_pairs_split_by_korean_text_and_dataset_layout(tmp_path: Path) -> None:
    terms, parallel = _write_pairs(tmp_path)
    cfg = TrainConfig(heldout_share=0.2, max_pairs=1000, docs_per_row=2)
    pairs = load_pairs(terms, parallel, cfg)
    train_ko = {k for k, _ in pairs.train_terms}
    held_ko = {k for k, _ in pairs.heldout_terms}
    assert train_ko and held_ko and not train_ko & held_ko  # a Korean term is wholly on one side
    assert len(pairs.train_terms) == 2 * len(train_ko) and len(train_ko) + len(held_ko) == 200
    assert all(heldout(k, 0.2) for k in held_ko) and 20 <= len(held_ko) <= 60
    assert load_pairs(terms, parallel, cfg) == pairs  # deterministic
    rows = [{"query": "q", "docs": ["d0", "d1", "d2"], "scores": [10.0, 5.0, 1.0]},
            {"query": "short", "docs": ["d0"], "scores": [10.0]}]  # fewer docs than docs_per_row: skipped
    ds, n_ret, n_pairs = build_dataset(rows, pairs, cfg)
    assert n_ret == 1 and n_pairs == len(pairs.train_terms) + len(pairs.train_sentences) == len(ds) - 1
    assert ds.column_names == ["query", "doc_0", "doc_1", "ko", "en", "label"]
    assert ds[0]["label"] == [KIND_RETRIEVAL, -1.0, -1.0, 10.0, 5.0] and ds[0]["ko"] == ""
    term_row, sent_row = ds[1], ds[n_ret + len(pairs.train_terms)]
    assert term_row["label"][0] == KIND_TERM and sent_row["label"][0] == KIND_SENTENCE
    assert pairs.texts[int(term_row["label"][1])] == term_row["ko"]
    assert pairs.texts[int(term_row["label"][2])] == term_row["en"] and term_row["query"] == ""



def test_retrieval_only_reference_config() -> None:
    cfg = TrainConfig(steps=7, synonym_batch_ratio=0.3, sentence_share=0.9, max_pairs=10, lr=1e-4)
    loss = LossConfig(lambda_xl=0.2, lambda_syn=0.3, teacher_temperature=0.5, lambda_d=0.01)
    ro_cfg, ro_loss = retrieval_only(cfg, loss)
    assert ro_cfg.synonym_batch_ratio == 0.0 and ro_loss.lambda_xl == 0.0 and ro_loss.lambda_syn == 0.0
    # retrieval settings are kept; pair-only settings go back to their defaults (the stage does not track them)
    assert (ro_cfg.steps, ro_cfg.lr, ro_loss.lambda_d) == (7, 1e-4, 0.01)
    assert (ro_cfg.sentence_share, ro_cfg.max_pairs) == (TrainConfig().sentence_share, TrainConfig().max_pairs)
    assert ro_loss.teacher_temperature == LossConfig().teacher_temperature
    # with no pair rows every batch is retrieval rows
    sampler = MixedBatchSampler(10, 0, 0, 4, ro_cfg.synonym_batch_ratio, 0.5, 3, 1)
    assert all(max(b) < 10 and len(b) == 4 for b in sampler)


def test_tiny_retrieval_only_run(tmp_path: Path, offline_teacher: Path) -> None:
    from kosparse.student import StudentConfig, build_student
    from kosparse.train import train_student

    texts = ["서울은 대한민국의 수도이다.", "부산은 항구 도시이다."]
    build_student(offline_teacher, tmp_path / "init", StudentConfig(layers=1, max_vocab=3000), texts)
    rows = [{"query": f"질문 {i}", "docs": [f"{texts[0]} {i}", texts[1]], "scores": [10.0, 4.0]} for i in range(6)]
    cfg, loss = retrieval_only(TrainConfig(steps=2, batch_size=3, docs_per_row=2, eval_steps=2, max_length=32,
                                           probe_texts=["서울"]), LossConfig(T=2))
    report = train_student(str(tmp_path / "init"), rows, PairData([], [], [], [], []), np.zeros((0, 1), np.float32),
                           tmp_path / "student", cfg, loss, tmp_path / "metrics", texts[:1])
    assert report.term_pairs == report.sentence_pairs == 0 and report.retrieval_rows == 6
    assert np.isfinite(report.history[-1]["kd"])
    assert report.settings["loss"]["lambda_xl"] == 0.0 and report.settings["train"]["synonym_batch_ratio"] == 0.0


@pytest.mark.slow
def test_tiny_training_run(tmp_path: Path, offline_teacher: Path) -> None:
    from sentence_transformers.sparse_encoder import SparseEncoder

    from kosparse.embed import embed_texts
    from kosparse.student import StudentConfig, build_student
    from kosparse.train import train_student

    terms, parallel = _write_pairs(tmp_path)
    cfg = TrainConfig(steps=4, batch_size=6, synonym_batch_ratio=0.34, docs_per_row=2, eval_steps=2, max_pairs=50,
                      max_length=32, probe_texts=["용어1"])
    pairs = load_pairs(terms, parallel, cfg)
    texts = [*pairs.texts, "서울은 대한민국의 수도이다.", "부산은 항구 도시이다."]
    build_student(offline_teacher, tmp_path / "init", StudentConfig(layers=1, max_vocab=6000), texts)
    emb = embed_texts(str(offline_teacher), pairs.texts, "query", "query: ")
    assert emb.shape == (len(pairs.texts), 384)
    rows = [{"query": f"질문 {i}", "docs": [f"서울은 대한민국의 수도이다 {i}.", "부산은 항구 도시이다."],
             "scores": [10.0, 4.0]} for i in range(12)]
    report = train_student(str(tmp_path / "init"), rows, pairs, emb, tmp_path / "student", cfg, LossConfig(T=2),
                           tmp_path / "metrics", ["서울은 대한민국의 수도이다."])
    assert report.steps == 4 and report.retrieval_rows == 12
    assert [h["step"] for h in report.history] == [2, 4]
    for h in report.history:  # every loss term was computed and logged
        assert {"kd", "flops_d", "flops_q", "cross_lingual", "alignment", "loss"} <= set(h)
        assert all(np.isfinite(h[k]) for k in ("kd", "cross_lingual", "alignment"))
        assert h["query_probe"]["avg_nnz"] > 0
    model = SparseEncoder(str(tmp_path / "student"), device="cpu")
    assert model.encode(["용어1"], convert_to_tensor=True).to_dense().shape[1] == model.tokenizer.vocab_size
    assert (tmp_path / "metrics" / "metrics.json").exists()
    saved = json.loads((tmp_path / "student" / "kosparse_train.json").read_text())
    assert saved["settings"]["loss"]["lambda_xl"] == 0.1


@pytest.mark.slow
def test_loss_falls_and_gradients_reach_every_trainable_part(tmp_path: Path, offline_teacher: Path) -> None:
    import torch
    from sentence_transformers.sparse_encoder import SparseEncoder

    from kosparse.embed import embed_texts
    from kosparse.student import StudentConfig, build_student
    from kosparse.train import CombinedLoss

    texts = ["서울은 대한민국의 수도이다.", "부산은 항구 도시이다.", "머신러닝", "machine learning", "신경망",
             "neural network", "질문"]
    build_student(offline_teacher, tmp_path / "init", StudentConfig(layers=1, max_vocab=6000), texts)
    model = SparseEncoder(str(tmp_path / "init"), device="cpu")
    model.train()
    for module in model.modules():  # no dropout noise: the same batch must give a falling loss
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    pair_texts = ["머신러닝", "machine learning", "신경망", "neural network"]
    teacher = torch.from_numpy(embed_texts(str(offline_teacher), pair_texts, "query", "query: "))
    loss_fn = CombinedLoss(model, LossConfig(T=1, lambda_xl=1.0, lambda_syn=1.0), 2, teacher,
                           list(model.tokenizer.all_special_ids))
    columns = {"query": ["서울은 어디", "부산은 어디", "", ""],
               "doc_0": ["서울은 대한민국의 수도이다.", "부산은 항구 도시이다.", "", ""],
               "doc_1": ["부산은 항구 도시이다.", "서울은 대한민국의 수도이다.", "", ""],
               "ko": ["", "", "머신러닝", "신경망"], "en": ["", "", "machine learning", "neural network"]}
    labels = torch.tensor([[KIND_RETRIEVAL, -1, -1, 10.0, 2.0], [KIND_RETRIEVAL, -1, -1, 10.0, 2.0],
                           [KIND_TERM, 0, 1, 0, 0], [KIND_TERM, 2, 3, 0, 0]])
    features = [model.preprocess(v) for v in columns.values()]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(8):
        opt.zero_grad()
        loss = loss_fn(features, labels)
        loss.backward()
        if step == 0:
            trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
            silent = [n for n, p in trainable.items() if p.grad is None or not torch.count_nonzero(p.grad)]
            assert not silent, f"no gradient reaches {silent}"
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[1]  # from step 1 on the FLOPS weight is constant (warm-up T = 1)
    parts = loss_fn.pop_parts()
    assert parts["kd"] > 0 and parts["cross_lingual"] >= 0 and parts["alignment"] > 0


@pytest.mark.slow
def test_inference_free_query_side(tmp_path: Path, offline_teacher: Path) -> None:
    import torch

    from kosparse.student import StudentConfig, build_student
    from kosparse.train import load_student, train_student

    terms, parallel = _write_pairs(tmp_path)
    cfg = TrainConfig(steps=2, batch_size=4, synonym_batch_ratio=0.5, docs_per_row=2, eval_steps=2, max_pairs=20,
                      max_length=32, probe_texts=["용어1"], query_side="inference_free")
    pairs = load_pairs(terms, parallel, cfg)
    build_student(offline_teacher, tmp_path / "init", StudentConfig(layers=1, max_vocab=6000),
                  [*pairs.texts, "서울은 대한민국의 수도이다."])
    base = load_student(str(tmp_path / "init"), "encoder", None)
    idf = {tok: 1.0 + (i % 7) for tok, i in base.tokenizer.get_vocab().items()}
    with pytest.raises(ValueError, match="needs idf.json"):
        load_student(str(tmp_path / "init"), "inference_free", None)
    emb = np.random.default_rng(0).normal(size=(len(pairs.texts), 8)).astype(np.float32)
    rows = [{"query": f"서울 {i}", "docs": ["서울은 대한민국의 수도이다.", "용어1"], "scores": [10.0, 3.0]}
            for i in range(8)]
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    report = train_student(str(tmp_path / "init"), rows, pairs, unit, tmp_path / "student", cfg, LossConfig(),
                           tmp_path / "metrics", ["서울은 대한민국의 수도이다."], idf=idf)
    assert report.steps == 2
    trained = load_student(str(tmp_path / "student"), "encoder", None)  # a saved Router loads as a SparseEncoder
    q = trained.encode_query(["서울"], convert_to_tensor=True).to_dense()[0]
    ids = base.tokenizer("서울", add_special_tokens=False)["input_ids"]
    expected = torch.zeros_like(q)
    for i in ids:
        expected[i] = idf[base.tokenizer.convert_ids_to_tokens(i)]
    assert torch.allclose(q, expected)  # the query side is the frozen IDF bag of the query's tokens
    d = trained.encode_document(["서울"], convert_to_tensor=True).to_dense()[0]
    assert not torch.allclose(d, expected)  # documents go through the trained encoder
