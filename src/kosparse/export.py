"""Export for OpenSearch ML Commons: the trained student as ``SPARSE_ENCODING`` and ``SPARSE_TOKENIZE`` models.

* ``sparse_encoding.zip``: a traced TorchScript module (``{name}.pt``) taking ``{"input_ids", "attention_mask"}``
  and returning ``{"output": tensor[batch, vocab]}``, next to ``tokenizer.json``. The module is the
  student's MLM followed by exactly the student's ``SpladePooling`` (its pooling strategy and activation —
  ``relu`` is ``log1p(relu(x))``, ``log1p_relu`` is ``log1p(log1p(relu(x)))``), then special tokens set to 0
  (as OpenSearch's own sparse models do) and the ``sparse_prune_ratio`` pruning of OpenSearch (keep weights
  above ``ratio · max`` of each row).
* ``sparse_tokenize.zip``: ``tokenizer.json`` + ``idf.json`` for the inference-free query side.
* ``*.register.json``: ML Commons ``_register`` bodies (``model_format: TORCH_SCRIPT``, the SHA-256 and size
  of the zip). They are the ``ml-commons_model_config.json`` that ``opensearch-py-ml``'s
  ``MLCommonClient.register_model`` reads for a chunked upload; add ``"url"`` to register from a URL.

Why not ``opensearch-py-ml`` itself (1.3.0): it pins ``pandas<2.3`` (this project runs pandas 3, which
``datasets`` uses), its ``SparseTokenizeModel`` downloads ``idf.json`` from the hub (unreachable offline, and we
have our own), and both classes look special tokens up through ``special_tokens_map`` values, which fails when
that map holds a list. The TorchScript interface here is the one its ``NeuralSparseModel`` traces (a dict in,
``{"output": ...}`` out, eager attention), so the zips are what ML Commons expects from it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

OUTPUT_KEY = "output"
ENCODING_ZIP = "sparse_encoding.zip"
TOKENIZE_ZIP = "sparse_tokenize.zip"
#: A fixed timestamp for zip members, so the same files always give the same zip bytes (and hash).
ZIP_DATE = (2020, 1, 1, 0, 0, 0)


@dataclass
class ExportConfig:
    """The ``export`` section.

    Attributes:
        name: Model name in ML Commons.
        version: Model version.
        description: Description of the ``SPARSE_ENCODING`` model.
        tokenize_description: Description of the ``SPARSE_TOKENIZE`` model.
        sparse_prune_ratio: Per row, weights not above ``ratio · max`` are set to 0 (0 keeps all).
        zero_special_tokens: Set the special tokens' weights to 0 (OpenSearch's own sparse models do).
        max_length: Truncation length written into ``tokenizer.json`` (OpenSearch tokenizes with it).
        parity_texts: Korean and English texts of the parity check.
        parity_tolerance: Largest allowed max abs difference between TorchScript and PyTorch outputs.
    """

    name: str = "kosparse-ko-en-sparse"
    version: str = "1.0.0"
    description: str = "Korean-English SPLADE document encoder trained by kosparse"
    tokenize_description: str = "IDF-weighted tokenizer for inference-free neural sparse queries (kosparse)"
    sparse_prune_ratio: float = 0.0
    zero_special_tokens: bool = True
    max_length: int = 512
    parity_texts: list[str] = field(default_factory=lambda: [
        "머신러닝은 데이터에서 패턴을 학습하는 인공지능의 한 분야이다.", "검색 엔진", "데이터베이스 색인",
        "Machine learning is a field of artificial intelligence.", "neural sparse retrieval with OpenSearch",
        "서울은 대한민국의 수도이며 가장 큰 도시이다. Seoul is the capital of South Korea."])
    parity_tolerance: float = 1e-4

    def __post_init__(self) -> None:
        if not 0.0 <= self.sparse_prune_ratio < 1.0:
            raise ValueError(f"export.sparse_prune_ratio must be in [0, 1), got {self.sparse_prune_ratio}")
        if self.max_length < 8:
            raise ValueError(f"export.max_length must be >= 8, got {self.max_length}")
        if len(self.parity_texts) < 2:
            raise ValueError("export.parity_texts needs at least two texts (a padded batch)")


def prune(values: Tensor, ratio: float) -> Tensor:
    """OpenSearch's ``sparse_prune_ratio``: keep, per row, the weights above ``ratio ·`` the row's maximum."""
    if ratio <= 0:
        return values
    threshold = values.max(dim=-1, keepdim=True).values * ratio
    return values * (values > threshold)


class SparseEncodingModule(nn.Module):
    """MLM logits → SPLADE pooling → special tokens zeroed → pruning; the traced model of ``SPARSE_ENCODING``.

    Args:
        mlm: A ``*ForMaskedLM`` model (eager attention: the TorchScript runtime of ML Commons has no SDPA).
        pooling_strategy: ``max`` or ``sum`` (from the student's ``SpladePooling``).
        activation_function: ``relu`` or ``log1p_relu`` (from the student's ``SpladePooling``).
        special_ids: Token ids whose weight is set to 0.
        vocab_size: Output width.
        prune_ratio: ``sparse_prune_ratio``.
    """

    def __init__(self, mlm: nn.Module, pooling_strategy: str, activation_function: str, special_ids: list[int],
                 vocab_size: int, prune_ratio: float) -> None:
        super().__init__()
        if pooling_strategy not in ("max", "sum") or activation_function not in ("relu", "log1p_relu"):
            raise ValueError(f"unsupported SpladePooling ({pooling_strategy}, {activation_function})")
        self.mlm = mlm
        self.max_pool = pooling_strategy == "max"
        self.double_log = activation_function == "log1p_relu"
        keep = torch.ones(vocab_size)
        keep[special_ids] = 0.0
        self.keep: Tensor
        self.register_buffer("keep", keep)
        self.prune_ratio = float(prune_ratio)

    def forward(self, input: dict[str, Tensor]) -> dict[str, Tensor]:  # noqa: A002 - ML Commons' argument name
        """``{"input_ids", "attention_mask"}`` → ``{"output": [batch, vocab]}``."""
        mask = input["attention_mask"]
        logits = self.mlm(input_ids=input["input_ids"], attention_mask=mask, return_dict=False)[0]
        x = torch.log1p(torch.relu(logits * mask.unsqueeze(-1).to(logits.dtype)))
        if self.double_log:
            x = torch.log1p(x)
        pooled = x.max(dim=1).values if self.max_pool else x.sum(dim=1)
        return {OUTPUT_KEY: prune(pooled * self.keep, self.prune_ratio)}


def _parts(model: Any) -> tuple[Any, Any]:
    """The document side's Transformer (``auto_model``) and ``SpladePooling`` of a ``SparseEncoder``."""
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    transformer = next((m for m in model.modules() if hasattr(m, "auto_model")), None)
    pooling = next((m for m in model.modules() if isinstance(m, SpladePooling)), None)
    if transformer is None or pooling is None:
        raise ValueError("the model has no MLM Transformer + SpladePooling document side to export")
    return transformer, pooling


def special_token_ids(tokenizer: Any) -> list[int]:
    """Every special token id of a Hugging Face tokenizer."""
    return sorted(set(int(i) for i in tokenizer.all_special_ids))


def build_module(model: Any, cfg: ExportConfig) -> SparseEncodingModule:
    """The exportable module of a ``SparseEncoder`` (its document side), in eval mode on the CPU."""
    from transformers import AutoModelForMaskedLM

    transformer, pooling = _parts(model)
    hf = transformer.auto_model
    # a fresh copy with eager attention: ML Commons' TorchScript runtime has no SDPA kernels
    mlm = AutoModelForMaskedLM.from_config(hf.config, attn_implementation="eager")
    mlm.load_state_dict(hf.state_dict())
    tok = model.tokenizer
    specials = special_token_ids(tok) if cfg.zero_special_tokens else []
    module = SparseEncodingModule(mlm, pooling.pooling_strategy, pooling.activation_function, specials,
                                  int(hf.config.vocab_size), cfg.sparse_prune_ratio)
    return module.eval().cpu()


def tokenize(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, Tensor]:
    """``input_ids`` and ``attention_mask`` as ML Commons feeds them (padded, truncated, no token types)."""
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt",
                    return_token_type_ids=False)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def trace(module: SparseEncodingModule, example: dict[str, Tensor]) -> Any:
    """``torch.jit.trace`` with a dict input (``strict=False``: the output is a dict)."""
    with torch.no_grad():
        return torch.jit.trace(module, (example,), strict=False)


def reference_vectors(model: Any, texts: list[str], cfg: ExportConfig, query: bool = False,
                      batch_size: int = 32) -> Tensor:
    """The PyTorch student's vectors with the export's post-processing (special tokens, pruning).

    ``query`` encodes with the query side (the IDF bag of an inference-free model), else the document side.
    """
    encode = model.encode_query if query else model.encode_document
    with torch.no_grad():
        emb = encode(texts, convert_to_tensor=True, batch_size=batch_size).to_dense().float().cpu()
    if cfg.zero_special_tokens:
        emb[:, special_token_ids(model.tokenizer)] = 0.0
    return prune(emb, cfg.sparse_prune_ratio)


def parity(traced: Any, model: Any, cfg: ExportConfig, max_length: int) -> dict[str, float]:
    """Max abs difference between the TorchScript outputs and the PyTorch student on ``cfg.parity_texts``.

    Checked on the whole batch (padded) and on each text alone (other shapes than the traced example).
    """
    texts = list(cfg.parity_texts)
    ref = reference_vectors(model, texts, cfg)
    with torch.no_grad():
        batch = traced(tokenize(model.tokenizer, texts, max_length))[OUTPUT_KEY]
        single = torch.cat([traced(tokenize(model.tokenizer, [t], max_length))[OUTPUT_KEY] for t in texts])
    return {"max_abs_diff_batch": float((batch - ref).abs().max()),
            "max_abs_diff_single": float((single - ref).abs().max()),
            "avg_nnz": float((batch > 0).sum(dim=1).float().mean()), "texts": float(len(texts))}


def tokenizer_json(tokenizer: Any, max_length: int) -> str:
    """The fast tokenizer's ``tokenizer.json`` with truncation set (ML Commons tokenizes with this file alone;
    without truncation a long document would overflow the position embeddings)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise ValueError("the student's tokenizer has no tokenizer.json (a fast tokenizer is needed)")
    data = json.loads(backend.to_str())
    data["truncation"] = {"direction": "Right", "max_length": max_length, "strategy": "LongestFirst", "stride": 0}
    return json.dumps(data, ensure_ascii=False)


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    """A zip of ``members`` with fixed timestamps (same bytes for the same files)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_DATE), data, compress_type=zipfile.ZIP_DEFLATED)


def register_body(zip_path: Path, name: str, version: str, function_name: str, description: str
                  ) -> dict[str, Any]:
    """The ML Commons ``_register`` body of a zip (also ``opensearch-py-ml``'s model config JSON)."""
    data = zip_path.read_bytes()
    return {"name": name, "version": version, "model_format": "TORCH_SCRIPT", "function_name": function_name,
            "description": description, "model_content_hash_value": hashlib.sha256(data).hexdigest(),
            "model_content_size_in_bytes": len(data)}


def check_idf(idf: dict[str, float], vocab: dict[str, int]) -> dict[str, float]:
    """How ``idf.json`` covers the tokenizer's vocabulary; fails when a weight is negative or not finite, or
    when no vocabulary token has a weight (the wrong tokenizer's file)."""
    import math

    bad = [t for t, w in idf.items() if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0)]
    if bad:
        raise ValueError(f"idf.json has {len(bad)} negative or non-finite weights, e.g. {bad[:3]}")
    covered = sum(1 for t in vocab if t in idf)
    if covered == 0:
        raise ValueError("idf.json shares no token with the student's tokenizer: it was made for another model")
    return {"vocab": float(len(vocab)), "covered": float(covered), "extra": float(len(set(idf) - set(vocab)))}


@dataclass
class ExportReport:
    """What the ``export`` stage writes to ``models/export/export_report.json``."""

    parity: dict[str, float]
    idf: dict[str, float]
    files: dict[str, dict[str, Any]]
    settings: dict[str, Any]


def export_student(model_dir: Path, idf_path: Path, out: Path, cfg: ExportConfig) -> ExportReport:
    """Write both zips and their ``_register`` bodies; fail when parity exceeds ``cfg.parity_tolerance``.

    Args:
        model_dir: The trained ``SparseEncoder`` folder.
        idf_path: ``idf.json`` over the student's tokenizer (the ``idf`` stage).
        out: Output folder (``models/export``).
        cfg: Export settings.
    """
    from dataclasses import asdict

    from sentence_transformers.sparse_encoder import SparseEncoder

    model = SparseEncoder(str(model_dir), device="cpu")
    model.eval()
    tok = model.tokenizer
    max_length = min(cfg.max_length, int(model.max_seq_length or cfg.max_length))
    module = build_module(model, cfg)
    traced = trace(module, tokenize(tok, list(cfg.parity_texts[:2]), max_length))
    checked = parity(traced, model, cfg, max_length)
    worst = max(checked["max_abs_diff_batch"], checked["max_abs_diff_single"])
    if worst > cfg.parity_tolerance:
        raise RuntimeError(f"export parity failed: TorchScript and PyTorch outputs differ by {worst:.2e} "
                           f"(> export.parity_tolerance {cfg.parity_tolerance:.0e})")
    idf = json.loads(idf_path.read_text(encoding="utf-8"))
    idf_stats = check_idf(idf, tok.get_vocab())
    out.mkdir(parents=True, exist_ok=True)
    pt = io.BytesIO()  # the module goes straight into the zip: no stray .pt in out/ if a later step fails
    torch.jit.save(traced, pt)
    tj = tokenizer_json(tok, max_length).encode("utf-8")
    write_zip(out / ENCODING_ZIP, {f"{cfg.name}.pt": pt.getvalue(), "tokenizer.json": tj})
    write_zip(out / TOKENIZE_ZIP, {"tokenizer.json": tj,
                                   "idf.json": json.dumps(idf, ensure_ascii=False, sort_keys=True).encode("utf-8")})
    files: dict[str, dict[str, Any]] = {}
    for zip_name, function, description, suffix in (
            (ENCODING_ZIP, "SPARSE_ENCODING", cfg.description, ""),
            (TOKENIZE_ZIP, "SPARSE_TOKENIZE", cfg.tokenize_description, "-tokenizer")):
        body = register_body(out / zip_name, cfg.name + suffix, cfg.version, function, description)
        reg = out / zip_name.replace(".zip", ".register.json")
        reg.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        files[zip_name] = body
    report = ExportReport(checked, idf_stats, files, asdict(cfg))
    (out / "export_report.json").write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    return report


def load_exported(zip_path: Path) -> tuple[Any, Any]:
    """The TorchScript module and the ``tokenizers.Tokenizer`` inside a ``sparse_encoding.zip`` (what ML
    Commons loads: nothing else from the student folder is needed)."""
    from tokenizers import Tokenizer

    with zipfile.ZipFile(zip_path) as zf:
        pt_name = next(n for n in zf.namelist() if n.endswith(".pt"))
        module = torch.jit.load(io.BytesIO(zf.read(pt_name)), map_location="cpu")
        tokenizer = Tokenizer.from_str(zf.read("tokenizer.json").decode("utf-8"))
    return module, tokenizer
