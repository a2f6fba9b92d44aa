"""Export for OpenSearch: the traced module's maths, the zips, the register bodies and parity with the student."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
import torch

from kosparse.export import (
    ENCODING_ZIP,
    TOKENIZE_ZIP,
    ExportConfig,
    SparseEncodingModule,
    check_idf,
    export_student,
    load_exported,
    prune,
    register_body,
    write_zip,
)


def test_prune_keeps_weights_above_ratio_of_row_max() -> None:
    v = torch.tensor([[4.0, 1.0, 0.5, 2.0], [1.0, 0.2, 0.0, 0.1]])
    assert torch.equal(prune(v, 0.3), torch.tensor([[4.0, 0.0, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0]]))
    assert torch.equal(prune(v, 0.0), v)


class FixedLogits(torch.nn.Module):
    """An 'MLM' that returns given logits, so the pooling maths can be checked by hand."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_dict: bool = False
                ) -> tuple[torch.Tensor]:
        return (self.logits,)


@pytest.mark.parametrize("activation", ["relu", "log1p_relu"])
def test_module_matches_splade_pooling(activation: str) -> None:
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7) * 3
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    module = SparseEncodingModule(FixedLogits(logits), "max", activation, special_ids=[0], vocab_size=7,
                                  prune_ratio=0.0)
    out = module({"input_ids": torch.zeros(2, 5, dtype=torch.long), "attention_mask": mask})["output"]
    pool = SpladePooling("max", activation).eval()
    ref = pool({"token_embeddings": logits.clone(), "attention_mask": mask})["sentence_embedding"]
    ref[:, 0] = 0.0
    assert torch.allclose(out, ref, atol=1e-6)
    # by hand for one cell: max over the unpadded positions only
    x = torch.log1p(torch.relu(logits[0, :3, 3]))
    x = torch.log1p(x) if activation == "log1p_relu" else x
    assert out[0, 3] == pytest.approx(float(x.max()), abs=1e-6)


def test_zip_bytes_are_reproducible_and_register_body_hashes_them(tmp_path: Path) -> None:
    write_zip(tmp_path / "a.zip", {"tokenizer.json": b"{}", "idf.json": b'{"x": 1.0}'})
    write_zip(tmp_path / "b.zip", {"tokenizer.json": b"{}", "idf.json": b'{"x": 1.0}'})
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    body = register_body(tmp_path / "a.zip", "m", "1.0.0", "SPARSE_TOKENIZE", "d")
    assert body["model_content_hash_value"] == hashlib.sha256((tmp_path / "a.zip").read_bytes()).hexdigest()
    assert body["model_content_size_in_bytes"] == (tmp_path / "a.zip").stat().st_size
    assert body["model_format"] == "TORCH_SCRIPT"


def test_check_idf_rejects_foreign_or_broken_files() -> None:
    assert check_idf({"a": 1.0, "zz": 2.0}, {"a": 0, "b": 1}) == {"vocab": 2.0, "covered": 1.0, "extra": 1.0}
    with pytest.raises(ValueError, match="shares no token"):
        check_idf({"zz": 1.0}, {"a": 0})
    with pytest.raises(ValueError, match="non-finite"):
        check_idf({"a": float("nan")}, {"a": 0})


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="sparse_prune_ratio"):
        ExportConfig(sparse_prune_ratio=1.0)


def test_export_parity_with_the_student(tmp_path: Path, offline_teacher: Path) -> None:
    """A real (one-layer) student: the TorchScript model in the zip, run with the zip's own tokenizer.json,
    matches the PyTorch SparseEncoder within 1e-4 on Korean and English texts of other shapes than traced."""
    from sentence_transformers.sparse_encoder import SparseEncoder

    from kosparse.encode import encode_file
    from kosparse.student import StudentConfig, build_student

    texts = ["서울은 대한민국의 수도이다.", "머신러닝과 딥러닝", "Machine learning and search engines.",
             "검색 엔진은 색인에서 문서를 찾는다. Search engines find documents in an index."]
    build_student(offline_teacher, tmp_path / "student", StudentConfig(layers=1, max_vocab=4000), texts)
    model = SparseEncoder(str(tmp_path / "student"), device="cpu")
    vocab = model.tokenizer.get_vocab()
    (tmp_path / "idf.json").write_text(json.dumps({t: 1.0 + (i % 7) for t, i in vocab.items()}))
    cfg = ExportConfig(parity_texts=texts[:2], sparse_prune_ratio=0.1)
    report = export_student(tmp_path / "student", tmp_path / "idf.json", tmp_path / "export", cfg)
    assert report.parity["max_abs_diff_batch"] <= 1e-4 and report.parity["max_abs_diff_single"] <= 1e-4

    out = tmp_path / "export"
    with zipfile.ZipFile(out / ENCODING_ZIP) as zf:
        assert sorted(zf.namelist()) == sorted([f"{cfg.name}.pt", "tokenizer.json"])
        assert json.loads(zf.read("tokenizer.json"))["truncation"]["max_length"] > 0
    with zipfile.ZipFile(out / TOKENIZE_ZIP) as zf:
        assert sorted(zf.namelist()) == ["idf.json", "tokenizer.json"]
        assert json.loads(zf.read("idf.json")) == json.loads((tmp_path / "idf.json").read_text())
    for name, function in ((ENCODING_ZIP, "SPARSE_ENCODING"), (TOKENIZE_ZIP, "SPARSE_TOKENIZE")):
        body = json.loads((out / name.replace(".zip", ".register.json")).read_text())
        assert body["function_name"] == function
        assert body["model_content_hash_value"] == hashlib.sha256((out / name).read_bytes()).hexdigest()

    # what ML Commons does: only the zip — its TorchScript module and its tokenizer.json
    module, tokenizer = load_exported(out / ENCODING_ZIP)
    tokenizer.no_padding()
    for text in texts[2:]:  # texts the trace never saw, one at a time
        enc = tokenizer.encode(text)
        assert enc.ids == model.tokenizer(text)["input_ids"]  # the zip's tokenizer.json tokenizes identically
        features = {"input_ids": torch.tensor([enc.ids]), "attention_mask": torch.tensor([enc.attention_mask])}
        with torch.no_grad():
            got = module(features)["output"][0]
        ref = model.encode_document([text], convert_to_tensor=True).to_dense()[0]
        ref[model.tokenizer.all_special_ids] = 0.0
        ref = prune(ref.unsqueeze(0), 0.1)[0]
        assert float((got - ref).abs().max()) <= 1e-4
        assert int((got > 0).sum()) > 0

    # `kosparse encode` writes the same vectors as {token: weight}
    src = tmp_path / "texts.txt"
    src.write_text(texts[2] + "\n")
    counts = encode_file(model, src, tmp_path / "vectors.jsonl", "emb", False, 0.1, 8, 6)
    assert counts == {"written": 1, "rejected": 0}
    row = json.loads((tmp_path / "vectors.jsonl").read_text())
    enc = tokenizer.encode(texts[2])
    with torch.no_grad():
        got = module({"input_ids": torch.tensor([enc.ids]), "attention_mask": torch.tensor([enc.attention_mask])})
    vec = got["output"][0]
    expected = {model.tokenizer.convert_ids_to_tokens(int(i)): round(float(vec[i]), 6)
                for i in torch.nonzero(vec).flatten()}
    assert row["emb"].keys() == {k for k, v in expected.items() if v > 0}
    assert all(abs(row["emb"][k] - expected[k]) <= 1e-4 for k in row["emb"])


def test_export_fails_when_parity_breaks(tmp_path: Path, offline_teacher: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    import kosparse.export as export
    from kosparse.student import StudentConfig, build_student

    build_student(offline_teacher, tmp_path / "student", StudentConfig(layers=1, max_vocab=3000), ["서울 수도"])
    (tmp_path / "idf.json").write_text(json.dumps({"서울": 1.0}))
    real = export.build_module

    def drifting(model: object, cfg: ExportConfig) -> SparseEncodingModule:
        module = real(model, cfg)
        module.keep.mul_(1.001)  # a 0.1% drift of every weight, as a wrong activation or dtype would cause
        return module

    monkeypatch.setattr(export, "build_module", drifting)
    with pytest.raises(RuntimeError, match="export parity failed"):
        export_student(tmp_path / "student", tmp_path / "idf.json", tmp_path / "export", ExportConfig())
    assert not (tmp_path / "export" / ENCODING_ZIP).exists()
