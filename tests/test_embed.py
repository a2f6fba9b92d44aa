"""Tests for kosparse.embed on a tiny real BERT sentence-transformers model built in a fixture.

The model (local WordPiece trained on a few Korean sentences, 2 layers, 32 dims, mean pooling +
Normalize) loads in about a second; no test touches the Hugging Face hub.
"""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

pytest.importorskip("sentence_transformers")

from kosparse.config import ConfigError  # noqa: E402
from kosparse.embed import (  # noqa: E402
    MANIFEST,
    EmbedConfig,
    Encoder,
    concat_shards,
    embed_parquet,
    embed_texts,
    embed_to_shards,
    model_fingerprint,
)

ROOT = Path(__file__).resolve().parents[1]

KO_SENTENCES = [
    "대한민국의 수도는 서울이다.",
    "서울특별시는 한반도 중서부에 위치한 최대 도시이다.",
    "부산은 대한민국 제2의 도시이며 최대의 항구 도시이다.",
    "세종대왕은 1443년에 훈민정음을 창제하였다.",
    "이순신 장군은 임진왜란 때 조선 수군을 이끌었다.",
    "제주도는 대한민국에서 가장 큰 섬이다.",
    "한국어 자연어 처리에서 형태소 분석은 중요한 전처리 단계이다.",
    "검색 엔진은 문서를 색인하고 질의와의 관련도를 계산한다.",
    "희소 벡터 검색과 밀집 벡터 검색을 결합하면 성능이 좋아진다.",
    "지하철 2호선은 서울을 순환하는 노선이다.",
    "김치찌개는 김치와 돼지고기를 넣고 끓인 찌개이다.",
    "한강은 서울을 가로질러 서해로 흘러간다.",
    "query: passage: 질문 문서",
]


def _texts(n: int) -> list[str]:
    """``n`` distinct texts of varied length (so sorting and bucketing matter)."""
    return [
        " ".join(KO_SENTENCES[(i + j) % len(KO_SENTENCES)] for j in range(1 + i % 4)) + f" {i}번"
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real 2-layer BERT sentence-transformers folder with a locally trained WordPiece vocabulary."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
    from tokenizers import models as tok_models
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("tiny")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(tok_models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFKC()  # not BERT's accent stripping, which splits Hangul into jamo
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        KO_SENTENCES * 4, trainers.WordPieceTrainer(vocab_size=500, special_tokens=specials)
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    hf_dir = root / "hf"
    BertModel(config).save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=64)
    st = SentenceTransformer(modules=[transformer, Pooling(32, "mean"), Normalize()], device="cpu")
    out = root / "st"
    st.save(str(out))
    return str(out)


@pytest.fixture(scope="module")
def encoder(tiny_model: str) -> Encoder:
    return Encoder(tiny_model, EmbedConfig(backend="torch", device="cpu", batch_size=4))


@pytest.fixture(scope="module")
def baseline(tiny_model: str) -> Callable[[Sequence[str]], np.ndarray]:
    """Plain sentence-transformers encode of already prefixed texts (the named baseline)."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(tiny_model, device="cpu")
    return lambda texts: st.encode(list(texts), batch_size=4, convert_to_numpy=True)


def _spy(encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of texts of every ``encode`` call (the real model still runs)."""
    calls: list[int] = []
    real = encoder.encode

    def counting(texts: Sequence[str], *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(len(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(encoder, "encode", counting)
    return calls


# --- embed_texts ------------------------------------------------------------------------------------


def test_shapes_norms_and_baseline_agreement(
    encoder: Encoder, baseline: Callable[[Sequence[str]], np.ndarray]
) -> None:
    texts = _texts(11)
    emb = embed_texts(encoder, texts, "passage", "passage: ")
    assert emb.shape == (11, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Sorting, bucket padding and reordering must not change anything: same as plain ST encode.
    np.testing.assert_allclose(emb, baseline(["passage: " + t for t in texts]), atol=2e-5)


def test_prefix_is_used(encoder: Encoder, baseline: Callable[[Sequence[str]], np.ndarray]) -> None:
    texts = _texts(5)
    with_prefix = embed_texts(encoder, texts, "query", "query: ")
    without = embed_texts(encoder, texts, "query", "")
    assert not np.allclose(with_prefix, without, atol=1e-3)
    np.testing.assert_allclose(with_prefix, baseline(["query: " + t for t in texts]), atol=2e-5)
    np.testing.assert_allclose(without, baseline(texts), atol=2e-5)


def test_unsorted_gives_same_result(tiny_model: str, encoder: Encoder) -> None:
    texts = _texts(9)
    unsorted = Encoder(
        tiny_model, EmbedConfig(backend="torch", device="cpu", batch_size=4, sort_by_length=False)
    )
    np.testing.assert_allclose(
        unsorted.encode(texts, "passage", "passage: "),
        encoder.encode(texts, "passage", "passage: "),
        atol=2e-5,
    )


def test_cpu_token_cap_splits_batches_without_changing_results(tiny_model: str, encoder: Encoder) -> None:
    texts = _texts(9) + ["짧다", "네"]
    capped = Encoder(tiny_model, EmbedConfig(backend="torch", device="cpu", batch_size=8, cpu_batch_tokens=48))
    lengths = np.array([len(capped.tokenizer("passage: " + t)["input_ids"]) for t in texts])
    batches = capped._batches(np.argsort(-lengths, kind="stable"), lengths)
    assert sorted(int(i) for idx, _ in batches for i in idx) == list(range(len(texts)))
    for idx, target in batches:
        assert target >= lengths[idx].max() and (len(idx) == 1 or len(idx) * target <= 48)
    assert len({len(idx) for idx, _ in batches}) > 1  # long texts go fewer to a batch than short ones
    np.testing.assert_allclose(capped.encode(texts, "passage", "passage: "),
                               encoder.encode(texts, "passage", "passage: "), atol=2e-5)
    # CUDA batches ignore the CPU cap.
    capped.device = "cuda"
    assert [len(idx) for idx, _ in capped._batches(np.arange(len(texts)), lengths)] == [8, 3]


def test_missing_saved_prompt_is_a_clear_error(encoder: Encoder) -> None:
    with pytest.raises(ValueError, match="no saved 'query' prompt"):
        embed_texts(encoder, ["서울"], "query")


def test_saved_prompt_is_the_fallback(encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoder.model, "prompts", {"query": "query: ", "passage": "passage: "})
    np.testing.assert_allclose(
        embed_texts(encoder, ["서울"], "query"), embed_texts(encoder, ["서울"], "query", "query: "), atol=1e-6
    )


def test_empty_input_and_truncation(tiny_model: str, encoder: Encoder) -> None:
    assert encoder.encode([], "passage", "").shape == (0, 32)
    short = Encoder(tiny_model, EmbedConfig(backend="torch", device="cpu", max_length=8))
    assert short.max_length == 8
    long_text = " ".join(KO_SENTENCES)
    emb = short.encode([long_text, long_text + " 끝"], "passage", "")
    np.testing.assert_allclose(emb[0], emb[1], atol=1e-6)  # the difference lies past the 8-token limit


def test_bf16_backend_agrees(tiny_model: str, encoder: Encoder) -> None:
    import torch

    texts = _texts(6)
    bf16 = Encoder(tiny_model, EmbedConfig(backend="torch-bf16", device="cpu"))
    assert next(bf16.model.parameters()).dtype == torch.bfloat16  # weights cast, not autocast
    cos = (bf16.encode(texts, "passage", "") * encoder.encode(texts, "passage", "")).sum(1)
    assert cos.min() > 0.99


def test_onnx_backends_export_once_and_agree(tiny_model: str, encoder: Encoder, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    texts = _texts(10)
    ref = encoder.encode(texts, "passage", "passage: ")
    cfg = EmbedConfig(backend="onnx", device="cpu", onnx_dir=str(tmp_path), batch_size=4)
    fp32 = Encoder(tiny_model, cfg).encode(texts, "passage", "passage: ")
    np.testing.assert_allclose(fp32, ref, atol=1e-4)
    (folder,) = tmp_path.iterdir()
    assert folder.name.endswith(model_fingerprint(tiny_model)[:16])
    exported = (folder / "model.onnx").stat().st_mtime_ns
    int8 = Encoder(tiny_model, EmbedConfig(backend="onnx-int8", device="cpu", onnx_dir=str(tmp_path)))
    assert (folder / "model.onnx").stat().st_mtime_ns == exported  # fp32 export reused, not redone
    q = int8.encode(texts, "passage", "passage: ")
    assert q.shape == ref.shape
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert (q * ref).sum(1).mean() > 0.95


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="embed.backend"):
        EmbedConfig(backend="tensorrt")
    with pytest.raises(ConfigError, match="embed.dtype"):
        EmbedConfig(dtype="bfloat16")
    with pytest.raises(ConfigError, match="embed.shard_size"):
        EmbedConfig(shard_size=0)


# --- shards and resume ------------------------------------------------------------------------------


def _records(n: int) -> list[tuple[str, str]]:
    return [(f"kowiki:{i}#0", t) for i, t in enumerate(_texts(n))]


def test_shards_resume_recomputes_only_missing(
    encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = EmbedConfig(backend="torch", device="cpu", batch_size=4, shard_size=10)
    records = _records(25)
    calls = _spy(encoder, monkeypatch)
    first = embed_to_shards(
        encoder, records, tmp_path / "shards", "passage", "passage: ", cfg, show_progress_bar=False
    )
    assert (first.computed, first.skipped, first.rows, first.dim) == ([0, 1, 2], [], 25, 32)
    assert calls == [10, 10, 5]
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.npy")) == [
        f"shard-0000{i}.npy" for i in range(3)
    ]
    n = concat_shards(tmp_path / "shards", tmp_path / "emb.npy", tmp_path / "ids.txt")
    full = np.load(tmp_path / "emb.npy")
    assert n == 25 and full.shape == (25, 32) and full.dtype == np.float16
    assert (tmp_path / "ids.txt").read_text(encoding="utf-8").splitlines() == [r[0] for r in records]
    np.testing.assert_allclose(
        full.astype(np.float32), encoder.encode([r[1] for r in records], "passage", "passage: "), atol=2e-3
    )

    # An interrupted run lost shard 1: only that shard is recomputed.
    (tmp_path / "shards" / "shard-00001.npy").unlink()
    calls.clear()
    again = embed_to_shards(
        encoder, records, tmp_path / "shards", "passage", "passage: ", cfg, show_progress_bar=False
    )
    assert (again.computed, again.skipped, calls) == ([1], [0, 2], [10])
    concat_shards(tmp_path / "shards", tmp_path / "emb2.npy", tmp_path / "ids2.txt")
    np.testing.assert_array_equal(np.load(tmp_path / "emb2.npy"), full)

    # A changed text invalidates its shard only; a changed prefix invalidates everything.
    changed = list(records)
    changed[21] = (changed[21][0], "바뀐 문장")
    calls.clear()
    assert embed_to_shards(
        encoder, changed, tmp_path / "shards", "passage", "passage: ", cfg, show_progress_bar=False
    ).computed == [2]
    calls.clear()
    assert embed_to_shards(
        encoder, changed, tmp_path / "shards", "passage", "", cfg, show_progress_bar=False
    ).computed == [0, 1, 2]


def test_shrunk_input_drops_stale_shards(encoder: Encoder, tmp_path: Path) -> None:
    cfg = EmbedConfig(backend="torch", device="cpu", shard_size=4)
    embed_to_shards(encoder, _records(10), tmp_path, "passage", "", cfg, show_progress_bar=False)
    result = embed_to_shards(encoder, _records(6), tmp_path, "passage", "", cfg, show_progress_bar=False)
    assert (result.skipped, result.computed, result.shards) == ([0], [1], 2)
    assert not (tmp_path / "shard-00002.npy").exists()
    assert concat_shards(tmp_path, tmp_path / "e.npy", tmp_path / "i.txt") == 6


def test_incomplete_shards_refuse_to_concat(encoder: Encoder, tmp_path: Path) -> None:
    embed_to_shards(
        encoder,
        _records(3),
        tmp_path,
        "passage",
        "",
        EmbedConfig(backend="torch", device="cpu"),
        show_progress_bar=False,
    )
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["complete"] = False
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError, match="incomplete"):
        concat_shards(tmp_path, tmp_path / "e.npy", tmp_path / "i.txt")


def test_ids_with_newlines_are_rejected(encoder: Encoder, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="newlines"):
        embed_to_shards(encoder, [("a\nb", "텍스트")], tmp_path, "passage", "", show_progress_bar=False)


def _write_parquet(path: Path, id_column: str, ids: list[str], texts: list[str]) -> None:
    pq.write_table(pa.table({id_column: ids, "text": texts}), path)


def test_embed_parquet_keeps_file_order(tiny_model: str, tmp_path: Path) -> None:
    records = _records(7)
    _write_parquet(tmp_path / "p.parquet", "passage_id", [r[0] for r in records], [r[1] for r in records])
    cfg = EmbedConfig(backend="torch", device="cpu", shard_size=3, dtype="float32")
    result = embed_parquet(
        tiny_model,
        tmp_path / "p.parquet",
        tmp_path / "out" / "e.npy",
        tmp_path / "out" / "ids.txt",
        tmp_path / "shards",
        "passage",
        "passage: ",
        cfg,
        show_progress_bar=False,
    )
    assert (result.rows, result.shards, result.backend, result.prefix) == (7, 3, "torch", "passage: ")
    emb = np.load(tmp_path / "out" / "e.npy")
    assert emb.dtype == np.float32
    np.testing.assert_allclose(
        emb, embed_texts(tiny_model, [r[1] for r in records], "passage", "passage: ", cfg), atol=1e-5
    )
    assert (tmp_path / "out" / "ids.txt").read_text(encoding="utf-8").splitlines() == [r[0] for r in records]
    assert not (tmp_path / "shards").exists()  # removed after success (keep_shards: false)


def test_embed_stage(tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stages/embed.py reads params.yaml and writes the embeddings, id files and report."""
    interim = tmp_path / "data" / "interim"
    interim.mkdir(parents=True)
    docs = _records(6)
    _write_parquet(interim / "passages.parquet", "passage_id", [r[0] for r in docs], [r[1] for r in docs])
    _write_parquet(interim / "queries.parquet", "query_id", ["q0", "q1"], ["서울은 어디?", "훈민정음 창제"])
    params = {
        "teacher": {
            "name": "tiny",
            "build": "none",
            "model": tiny_model,
            "path": "models/teacher",
            "dim": 32,
            "max_length": 64,
            "query_prefix": "query: ",
            "passage_prefix": "passage: ",
        },
        "embed": {"backend": "torch", "device": "cpu", "shard_size": 4, "batch_size": 4},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert runpy.run_path(str(ROOT / "stages" / "embed.py"))["main"]() == 0
    out = tmp_path / "data" / "neural_sparse_training" / "embeddings"
    assert np.load(out / "document_embeddings.npy").shape == (6, 32)
    queries = np.load(out / "query_embeddings.npy")
    assert queries.shape == (2, 32) and queries.dtype == np.float16
    assert (out / "query_ids.txt").read_text().splitlines() == ["q0", "q1"]
    report = json.loads((out / "embed_report.json").read_text())
    assert report["documents"]["rows"] == 6 and report["queries"]["prefix"] == "query: "


def test_pooling_without_prompt_matches_sentence_transformers(tiny_model: str) -> None:
    """For Pooling(include_prompt=False) models the prefix is left out of the pooled tokens, as in ST."""
    from sentence_transformers import SentenceTransformer

    texts = _texts(5)
    st = SentenceTransformer(tiny_model, device="cpu")
    setattr(st[1], "include_prompt", False)  # noqa: B010 - typed as Module
    ours = Encoder(tiny_model, EmbedConfig(backend="torch", device="cpu"))
    setattr(ours.model[1], "include_prompt", False)  # noqa: B010
    expected = st.encode(texts, prompt="query: ", convert_to_numpy=True)
    np.testing.assert_allclose(ours.encode(texts, "query", "query: "), expected, atol=2e-5)


def test_empty_input_writes_an_empty_array(encoder: Encoder, tmp_path: Path) -> None:
    result = embed_to_shards(encoder, [], tmp_path / "s", "query", "query: ", show_progress_bar=False)
    assert (result.rows, result.shards, result.dim) == (0, 0, 32)
    assert concat_shards(tmp_path / "s", tmp_path / "e.npy", tmp_path / "i.txt") == 0
    assert np.load(tmp_path / "e.npy").shape == (0, 32)
    assert (tmp_path / "i.txt").read_text() == ""


@pytest.mark.gpu
def test_cuda_fp16_agrees(tiny_model: str, encoder: Encoder) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    gpu = Encoder(tiny_model, EmbedConfig(device="auto"))
    assert (gpu.device, gpu.backend) == ("cuda", "torch")
    texts = _texts(8)
    cos = (gpu.encode(texts, "passage", "passage: ") * encoder.encode(texts, "passage", "passage: ")).sum(1)
    assert cos.min() > 0.99


def test_backend_resolution() -> None:
    from kosparse.embed import cpu_has_native_bf16, resolve_backend

    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("auto", "cpu") == ("torch-bf16" if cpu_has_native_bf16() else "torch")
    assert resolve_backend("torch", "cpu") == "torch"
