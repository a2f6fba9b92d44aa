"""The cross-lingual losses on tensors whose values can be worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from kosparse.losses import combined_loss, cross_lingual_kd, english_token_mask, synonym_alignment


def test_cross_lingual_kd_zero_when_student_matches_teacher() -> None:
    t = torch.eye(3)  # teacher: each Korean text is closest to its own translation
    s = torch.eye(3) * math.sqrt(2.0)
    # student scores s·sᵀ/τ = 2I/2 = I, teacher I/τ_t with τ_t = 1 = I: same softmax, KL 0
    assert cross_lingual_kd(s, s, t, t, temperature=2.0, teacher_temperature=1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_cross_lingual_kd_by_hand() -> None:
    teacher_ko = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    teacher_en = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    student_ko = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # the second Korean text looks like the first
    student_en = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = cross_lingual_kd(student_ko, student_en, teacher_ko, teacher_en, temperature=1.0, teacher_temperature=1.0)
    p = [math.e / (math.e + 1), 1 / (math.e + 1)]  # teacher row 0 = softmax([1, 0]); row 1 = softmax([0, 1])
    q = p  # student rows are both softmax([1, 0])
    kl0 = 0.0  # row 0: same distributions
    kl1 = p[1] * math.log(p[1] / q[0]) + p[0] * math.log(p[0] / q[1])
    assert loss.item() == pytest.approx((kl0 + kl1) / 2, rel=1e-5)


def test_synonym_alignment_by_hand() -> None:
    ko = torch.tensor([[2.0, 0.5, 0.0, 0.0]])
    en = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])  # the English synonym's tokens are ids 1 and 2
    cos = (2 * 0 + 0.5 * 1) / (math.sqrt(4.25) * math.sqrt(2))
    hinge = (max(0, 1 - 0.5) + max(0, 1 - 0.0)) / 2  # target weight 1: token 1 lacks 0.5, token 2 lacks 1
    loss = synonym_alignment(ko, en, mask, target_weight=1.0, token_weight=0.5)
    assert loss.item() == pytest.approx((1 - cos) + 0.5 * hinge, rel=1e-6)
    # once the Korean vector carries the English tokens above the target, only the cosine term is left
    ko_good = torch.tensor([[0.0, 1.5, 1.2, 0.0]])
    good = synonym_alignment(ko_good, en, mask, target_weight=1.0, token_weight=0.5)
    assert good.item() == pytest.approx(1 - torch.nn.functional.cosine_similarity(ko_good, en).item(), rel=1e-6)


def test_synonym_alignment_gradient_raises_english_tokens() -> None:
    ko = torch.tensor([[1.0, 0.1, 0.0]], requires_grad=True)
    en = torch.tensor([[0.0, 1.0, 0.0]])
    synonym_alignment(ko, en, en.clone()).backward()
    assert ko.grad is not None and ko.grad[0, 1] < 0  # descent increases the English token's weight


def test_combined_loss_weights_and_missing_parts() -> None:
    r, xl, syn = torch.tensor(2.0), torch.tensor(3.0), torch.tensor(5.0)
    out = combined_loss(r, xl, syn, lambda_xl=0.1, lambda_syn=0.5)
    assert out["loss"].item() == pytest.approx(2.0 + 0.3 + 2.5)
    only = combined_loss(r, None, None, lambda_xl=0.1, lambda_syn=0.5)
    assert only["loss"].item() == 2.0 and only["cross_lingual"].item() == 0.0


def test_english_token_mask(tiny_tokenizer_dir: object) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    mask = english_token_mask(tok, ["machine learning", ""], tok.vocab_size)
    ids = tok("machine learning", add_special_tokens=False)["input_ids"]
    assert mask[0, ids].eq(1).all() and mask[0].sum() == len(set(ids)) and mask[1].sum() == 0
