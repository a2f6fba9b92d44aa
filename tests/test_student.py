"""The offline student: vocabulary choice, tokenizer pruning, the built SparseEncoder, IDF weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from kosparse.student import StudentConfig, build_student, choose_vocabulary, idf_weights, pruned_tokenizer_json


def _unigram_spec() -> dict[str, object]:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0), ("▁머신", -3.0),
             ("러닝", -3.0), ("▁machine", -3.0), ("▁learning", -3.0), ("머", -5.0), ("신", -5.0), ("러", -5.0),
             ("닝", -5.0), ("▁zebra", -4.0), ("<mask>", 0.0)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return json.loads(tok.to_str())


def test_vocabulary_and_pruned_tokenizer() -> None:
    from tokenizers import Tokenizer

    spec = _unigram_spec()
    pieces = [p for p, _ in spec["model"]["vocab"]]  # type: ignore[index]
    tok = Tokenizer.from_str(json.dumps(spec))
    keep = choose_vocabulary(tok, pieces, ["머신러닝 machine learning"] * 3, min_count=2, max_vocab=100)
    kept = [pieces[i] for i in keep]
    assert "▁zebra" not in kept  # never seen
    always = {"<s>", "<pad>", "</s>", "<unk>", "<mask>", "머", "신", "러", "닝", "▁머신", "러닝"}  # specials, Hangul
    assert always <= set(kept)
    assert "▁machine" in kept and "▁learning" in kept
    small = Tokenizer.from_str(json.dumps(pruned_tokenizer_json(spec, keep)))
    enc = small.encode("머신러닝 machine learning")
    assert enc.tokens == ["<s>", "▁머신", "러닝", "▁machine", "▁learning", "</s>"]
    assert small.token_to_id("<mask>") == len(keep) - 1
    assert small.token_to_id("<unk>") in small.encode("zebra").ids  # its piece was pruned, its letters unseen
    capped = choose_vocabulary(tok, pieces, ["machine machine learning"], min_count=1, max_vocab=1)
    assert "▁machine" not in [pieces[i] for i in capped]  # the cap leaves no room after the always-kept pieces


def test_idf_weights_by_hand(tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    texts = ["machine learning", "machine", "deep learning"]
    idf = idf_weights(tok.backend_tokenizer, tok.vocab_size, texts, tok.all_special_ids)
    machine = tok.convert_tokens_to_ids("machine")
    df, n = 2, 3
    assert idf[machine] == pytest.approx(math.log1p((n - df + 0.5) / (df + 0.5)))
    unseen = math.log1p((n + 0.5) / 0.5)
    assert np.isclose(idf, unseen).sum() >= tok.vocab_size - 10  # every other token gets the unseen weight
    assert all(idf[i] == 0.0 for i in tok.all_special_ids)


@pytest.mark.slow
def test_build_student_from_offline_teacher(tmp_path: Path, offline_teacher: Path) -> None:
    import torch
    from sentence_transformers.sparse_encoder import SparseEncoder

    texts = ["머신러닝은 인공지능의 한 분야이다.", "서울은 대한민국의 수도이다.", "machine learning",
             "neural network"] * 5
    report = build_student(offline_teacher, tmp_path / "s", StudentConfig(layers=2, max_vocab=8000), texts)
    assert 5373 <= report["hangul_pieces"] <= report["vocab_size"] <= 8000 and report["layers"] == 2
    model = SparseEncoder(str(tmp_path / "s"), device="cpu")
    emb = model.encode(["머신러닝은 인공지능의 한 분야이다.", "machine learning"], convert_to_tensor=True).to_dense()
    assert emb.shape == (2, report["vocab_size"])
    nnz = (emb > 0).sum(dim=1)
    assert (nnz > 0).all() and (nnz < 0.05 * report["vocab_size"]).all()  # sparse from the start
    specials = model.tokenizer.all_special_ids
    assert emb[:, specials].abs().sum() == 0
    top = {t for t, _ in model.decode(emb[1], top_k=5)}
    assert {"▁machine", "▁learning"} <= top  # the lexical prior: a text's own tokens come first
    model.train()  # SpladePooling works in place in eval mode
    features = model.preprocess(["머신러닝"])
    out = model(features)["sentence_embedding"].sum()
    out.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in grads)
