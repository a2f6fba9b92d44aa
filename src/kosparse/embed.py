"""Embed: dense teacher embeddings of passages and queries, written as resumable shards.

The teacher is any sentence-transformers model, named by a Hugging Face hub id
(``intfloat/multilingual-e5-large``) or a local folder (the offline ``models/teacher``); both go
through the same code. Prefixes (E5's ``query: `` / ``passage: ``) are passed explicitly from the
teacher config; a model's saved prompts are only a fallback, because hub copies of E5 have none.

Speed on CPU comes from three things (see ``bench/embed.py`` for the measured effect):

* texts are tokenized once, sorted by token length and padded only to a small set of bucket
  lengths, so batches carry little padding and oneDNN / ONNX Runtime reuse their kernels;
* the ``auto`` backend casts the model's weights to bf16 where the CPU has native bf16 (AMX or
  AVX512-BF16), so every matmul runs on bf16 tiles without autocast's per-call weight casts; fp16
  on CUDA, fp32 elsewhere;
* the opt-in ONNX backends export the transformer once (eager attention, ONNX Runtime's BERT
  fusions, optional dynamic int8 quantisation) into a cache folder keyed by the model's content;
  nothing is ever downloaded at run time. On 450-token passages they are attention-bound and
  gained less than bf16 in ``bench/embed.py`` (int8: cosine ~0.996 to fp32), so ``auto`` never
  picks them.

Large outputs are streamed: :func:`embed_to_shards` writes ``shard-00000.npy`` files plus a JSON
manifest and skips shards that are already complete (an interrupted run resumes), and
:func:`concat_shards` copies them into one ``.npy`` through ``np.lib.format.open_memmap``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kosparse.config import require

__all__ = [
    "EmbedConfig",
    "EmbedResult",
    "Encoder",
    "concat_shards",
    "embed_parquet",
    "embed_texts",
    "embed_to_shards",
    "export_onnx",
    "model_fingerprint",
    "resolve_backend",
]

log = logging.getLogger(__name__)

Prompt = Literal["query", "passage"]
BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1
_ONNX_EXPORT_VERSION = 1


@dataclass
class EmbedConfig:
    """The ``embed`` section: how teacher embeddings are computed and stored.

    Attributes:
        batch_size: Texts per forward pass (at most).
        cpu_batch_tokens: On CPU, also cap a batch at this many padded tokens (``None``: no cap), so
            512-token passages go 4 to a batch while short queries still fill ``batch_size``: the
            attention scores then stay in cache (``bench/embed.py --batch-sizes`` shows the effect).
            CUDA batches ignore it.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        dtype: Storage dtype of the written arrays: ``float16`` or ``float32``.
        backend: ``auto``; ``torch`` (fp32 on CPU, fp16 on CUDA); ``torch-bf16`` (bf16 weights and activations);
            ``onnx`` (ONNX Runtime fp32); ``onnx-int8`` (ONNX Runtime, dynamic int8 weights).
            ``auto`` picks ``torch-bf16`` on CPUs with native bf16 (AMX / AVX512-BF16), else
            ``torch``.
        shard_size: Texts per shard file (the unit of resumption).
        max_length: Token limit including prefix and special tokens; ``None`` uses the teacher's.
        sort_by_length: Sort texts by token length before batching (results keep input order).
        num_threads: CPU threads for torch / ONNX Runtime; ``None`` keeps the library default.
        onnx_dir: Root of the ONNX export cache; ``None`` uses ``~/.cache/kosparse/onnx``. Each
            model gets a subfolder named after it and its content hash.
        keep_shards: Keep the shard folder after a successful concatenation.
    """

    batch_size: int = 32
    cpu_batch_tokens: int | None = 2048
    device: str = "auto"
    dtype: str = "float16"
    backend: str = "auto"
    shard_size: int = 8192
    max_length: int | None = None
    sort_by_length: bool = True
    num_threads: int | None = None
    onnx_dir: str | None = None
    keep_shards: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.batch_size > 0, "embed.batch_size", "must be positive"),
            (self.cpu_batch_tokens is None or self.cpu_batch_tokens > 0, "embed.cpu_batch_tokens",
             "must be positive or null"),
            (self.device in {"auto", "cpu", "cuda"}, "embed.device", f"unknown device {self.device!r}"),
            (self.dtype in {"float16", "float32"}, "embed.dtype", f"unknown dtype {self.dtype!r}"),
            (self.backend in BACKENDS, "embed.backend", f"unknown backend {self.backend!r}; use {BACKENDS}"),
            (self.shard_size > 0, "embed.shard_size", "must be positive"),
            (self.max_length is None or self.max_length >= 8, "embed.max_length", "must be >= 8 or null"),
            (self.num_threads is None or self.num_threads > 0, "embed.num_threads", "must be > 0 or null"),
        ]
        for ok, key, message in checks:
            require(ok, key, message)


@dataclass
class EmbedResult:
    """What one :func:`embed_parquet` / :func:`embed_to_shards` run did.

    Attributes:
        rows: Texts embedded (all shards).
        computed_rows: Texts embedded by the model in this run.
        dim: Embedding dimension.
        shards: Number of shards.
        computed: Indices of shards computed in this run.
        skipped: Indices of shards found complete and reused.
        seconds: Wall time of the run.
        encode_seconds: Time spent in the model (computed shards only).
        backend: Backend that computed the shards (``None`` when every shard was reused).
        device: Device that computed the shards (``None`` when every shard was reused).
        prefix: The prefix prepended to every text (``None`` when every shard was reused).
    """

    rows: int = 0
    computed_rows: int = 0
    dim: int = 0
    shards: int = 0
    computed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    seconds: float = 0.0
    encode_seconds: float = 0.0
    backend: str | None = None
    device: str | None = None
    prefix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with texts/s of the computed part."""
        out = asdict(self)
        out["texts_per_second"] = (round(self.computed_rows / self.encode_seconds, 2)
                                   if self.encode_seconds > 0 else None)
        return out


# --- device, backend and model identity -----------------------------------------------------------

def resolve_device(device: str) -> str:
    """Map ``auto`` to ``cuda`` when a GPU is visible, else ``cpu``.

    Args:
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        ``cpu`` or ``cuda``.

    Raises:
        RuntimeError: If ``cuda`` is requested and torch sees no GPU.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("embed.device is 'cuda' but torch sees no CUDA device")
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls natively (AMX tiles or AVX512-BF16)."""
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _onnxruntime_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def resolve_backend(backend: str, device: str) -> str:
    """Resolve ``auto`` to a concrete backend for ``device``.

    Args:
        backend: One of :data:`BACKENDS`.
        device: ``cpu`` or ``cuda`` (already resolved).

    Returns:
        ``torch``, ``torch-bf16``, ``onnx`` or ``onnx-int8``.

    Raises:
        ImportError: If an ONNX backend is requested without onnxruntime and onnx installed.
    """
    if backend == "auto":
        return "torch-bf16" if device == "cpu" and cpu_has_native_bf16() else "torch"
    if backend.startswith("onnx") and not _onnxruntime_available():
        raise ImportError(f"embed.backend={backend!r} needs `pip install onnxruntime onnx`")
    return backend


@functools.lru_cache(maxsize=16)
def model_fingerprint(model_name_or_path: str) -> str:
    """A content hash of a local model folder, or the hub id itself.

    A local folder is hashed file by file (names and bytes; an ``onnx/`` subfolder is ignored), so
    rebuilding a teacher in place changes the fingerprint. A hub id cannot be hashed offline and is
    used as is.

    Args:
        model_name_or_path: Local folder or hub id.

    Returns:
        A hex digest (local folder) or ``hub:<id>``.
    """
    root = Path(model_name_or_path)
    if not root.is_dir():
        return f"hub:{model_name_or_path}"
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "onnx" not in p.relative_to(root).parts):
        h.update(str(path.relative_to(root)).encode())
        with path.open("rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def _bucket_length(n: int) -> int:
    """Round a batch's longest sequence up to a bucket: multiples of 16 to 128, then of 64."""
    step = 16 if n <= 128 else 64
    return -(-n // step) * step


# --- ONNX export -----------------------------------------------------------------------------------

def _onnx_cache_folder(model_name_or_path: str, onnx_dir: str | None) -> Path:
    root = Path(onnx_dir) if onnx_dir else Path.home() / ".cache" / "kosparse" / "onnx"
    name = re.sub(r"[^A-Za-z0-9._-]+", "--", model_name_or_path.strip("/"))[-80:]
    return root / f"{name}-{model_fingerprint(model_name_or_path)[:16]}"


def export_onnx(model: Any, model_name_or_path: str, out_dir: Path, quantize: bool) -> Path:
    """Export a sentence-transformers model's transformer to ONNX once (fp32 + optional int8).

    The transformer (module 0) is traced with eager attention so ONNX Runtime's BERT optimizer can
    fuse attention, LayerNorm and GELU; the fused graph is saved as ``model.onnx`` and, with
    ``quantize``, dynamically quantised (int8 per-channel weights) to ``model_qint8.onnx``. Pooling
    and normalisation stay in torch (the model's own modules). Existing files are reused.

    Args:
        model: A loaded ``SentenceTransformer`` whose first module is a text ``Transformer``.
        model_name_or_path: Its hub id or folder (recorded in ``export.json``).
        out_dir: The cache folder for this model.
        quantize: Also write the int8 model.

    Returns:
        Path of the ONNX file to load (``model_qint8.onnx`` or ``model.onnx``).

    Raises:
        NotImplementedError: If module 0 does not output ``last_hidden_state`` for text.
    """
    import torch

    target = out_dir / ("model_qint8.onnx" if quantize else "model.onnx")
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    module = model[0]
    hf = module.auto_model
    text_cfg = getattr(module, "modality_config", {}).get("text", {})
    output_name = text_cfg.get("method_output_name", "last_hidden_state")
    if output_name not in ("last_hidden_state", ["last_hidden_state"], ("last_hidden_state",)):
        raise NotImplementedError(f"ONNX export needs a text encoder with last_hidden_state, got {text_cfg}")
    fp32 = out_dir / "model.onnx"
    big = sum(p.numel() for p in hf.parameters()) * 4 > 1_800_000_000
    if not fp32.exists():
        raw = out_dir / "raw" / "model.onnx"
        raw.parent.mkdir(exist_ok=True)
        sample = model.tokenizer(["passage: 서울은 대한민국의 수도이다.", "query: 수도"], padding=True,
                                 return_tensors="pt")
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]

        class _Wrapper(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return self.inner(**dict(zip(names, inputs, strict=True))).last_hidden_state

        previous = getattr(hf.config, "_attn_implementation", None)
        hf.set_attn_implementation("eager")
        axes = {k: {0: "batch", 1: "sequence"} for k in [*names, "last_hidden_state"]}
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches
                torch.onnx.export(_Wrapper(hf.eval()), tuple(sample[k] for k in names), str(raw),
                                  dynamo=False, input_names=names, output_names=["last_hidden_state"],
                                  dynamic_axes=axes, opset_version=17)
        finally:
            if previous:
                hf.set_attn_implementation(previous)
        from onnxruntime.transformers.optimizer import optimize_model

        cfg = hf.config
        optimized = optimize_model(str(raw), model_type="bert", num_heads=cfg.num_attention_heads,
                                   hidden_size=cfg.hidden_size)
        optimized.save_model_to_file(str(fp32), use_external_data_format=big)
        shutil.rmtree(raw.parent)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = out_dir / "model_qint8.tmp.onnx"
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         use_external_data_format=big, extra_options={"DefaultTensorType": 1})
        os.replace(tmp, target)
    import onnxruntime

    info = {"source": model_name_or_path, "fingerprint": model_fingerprint(model_name_or_path),
            "export_version": _ONNX_EXPORT_VERSION, "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "files": sorted(p.name for p in out_dir.glob("*.onnx"))}
    (out_dir / "export.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return target


# --- encoder -------------------------------------------------------------------------------------

class Encoder:
    """A loaded teacher plus the resolved backend: texts in, L2-normalised float32 vectors out.

    Args:
        model_name_or_path: Hub id or local folder of a sentence-transformers model.
        cfg: Embedding settings (defaults when ``None``).
    """

    def __init__(self, model_name_or_path: str, cfg: EmbedConfig | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.cfg = cfg or EmbedConfig()
        self.model_name_or_path = model_name_or_path
        self.device = resolve_device(self.cfg.device)
        self.backend = resolve_backend(self.cfg.backend, self.device)
        if self.cfg.num_threads:
            torch.set_num_threads(self.cfg.num_threads)
        # ONNX backends keep torch (tokenizer, pooling) on the CPU; ONNX Runtime picks its own provider.
        torch_device = "cpu" if self.backend.startswith("onnx") else self.device
        self.model = SentenceTransformer(model_name_or_path, device=torch_device).eval()
        if self.device == "cuda" and self.backend == "torch":
            self.model.half()
        elif self.backend == "torch-bf16":
            # Whole-model bf16 rather than autocast: autocast re-casts every weight on every call and
            # keeps layer norms in fp32 (two casts per layer); bench/embed.py measured the difference.
            self.model.to(torch.bfloat16)
        self.tokenizer = self.model.tokenizer
        self.max_length = int(self.cfg.max_length or self.model.max_seq_length or 512)
        model = self.model
        dim = (model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
               else model.get_sentence_embedding_dimension())
        if not dim:
            raise ValueError(f"{model_name_or_path}: cannot tell the embedding dimension")
        self.dim = int(dim)
        self._session: Any = None
        self._session_inputs: list[str] = []
        if self.backend.startswith("onnx"):
            folder = _onnx_cache_folder(model_name_or_path, self.cfg.onnx_dir)
            path = export_onnx(self.model, model_name_or_path, folder, quantize=self.backend == "onnx-int8")
            self._load_session(path)

    def _load_session(self, path: Path) -> None:
        import onnxruntime as ort
        import torch

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = self.cfg.num_threads or torch.get_num_threads()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if self.device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self._session = ort.InferenceSession(str(path), opts, providers=providers)
        self._session_inputs = [i.name for i in self._session.get_inputs()]

    def resolve_prefix(self, prompt: Prompt, prefix: str | None) -> str:
        """The prefix to prepend: the explicit one, else the model's saved prompt of that name.

        Args:
            prompt: ``query`` or ``passage``.
            prefix: Explicit prefix from the teacher config (``""`` means none).

        Returns:
            The prefix string.

        Raises:
            ValueError: If no prefix is given and the model saved no prompt named ``prompt``.
        """
        if prefix is not None:
            return prefix
        saved = (self.model.prompts or {}).get(prompt)
        if not saved:  # sentence-transformers fills absent prompts with None or ""
            raise ValueError(f"{self.model_name_or_path} has no saved {prompt!r} prompt: pass the prefix "
                             "explicitly (teacher.query_prefix / teacher.passage_prefix), or '' for none")
        return str(saved)

    def _forward(self, features: dict[str, Any]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            if self._session is not None:
                feeds = {k: features[k].numpy().astype(np.int64) for k in self._session_inputs}
                hidden = self._session.run(["last_hidden_state"], feeds)[0]
                feats: dict[str, Any] = {**features, "token_embeddings": torch.from_numpy(hidden)}
                for module in list(self.model)[1:]:
                    feats = module(feats)
                emb = feats["sentence_embedding"]
            else:
                features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                            for k, v in features.items()}
                emb = self.model(features)["sentence_embedding"]
            return emb.float().cpu().numpy()

    def _batches(self, order: np.ndarray, lengths: np.ndarray) -> list[tuple[np.ndarray, int]]:
        """Split ``order`` into batches: ``(rows, padded length)``, capped by texts and (CPU) tokens."""
        budget = self.cfg.cpu_batch_tokens if self.device == "cpu" else None
        out: list[tuple[np.ndarray, int]] = []
        start = 0
        while start < len(order):
            size = self.cfg.batch_size
            while True:
                idx = order[start:start + size]
                longest = int(lengths[idx].max())
                target = min(_bucket_length(longest), max(longest, self.max_length))
                if budget is None or size == 1 or size * target <= budget:
                    break
                size = max(1, min(size - 1, budget // target))
            out.append((idx, target))
            start += len(idx)
        return out

    def encode(self, texts: Sequence[str], prompt: Prompt = "passage", prefix: str | None = None,
               show_progress_bar: bool = False) -> np.ndarray:
        """Embed texts with the prompt's prefix.

        Args:
            texts: Raw texts (without prefix).
            prompt: ``query`` or ``passage``.
            prefix: Explicit prefix; ``None`` falls back to the model's saved prompt.
            show_progress_bar: Show a tqdm bar over batches.

        Returns:
            ``(len(texts), dim)`` float32, each row L2-normalised, in input order.
        """
        from tqdm.auto import tqdm

        pre = self.resolve_prefix(prompt, prefix)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        enc = self.tokenizer([pre + t for t in texts], truncation=True, max_length=self.max_length)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))
        order = np.argsort(-lengths, kind="stable") if self.cfg.sort_by_length else np.arange(len(texts))
        # ST's prompt_length convention (prompt tokens minus the closing special token), used by
        # Pooling(include_prompt=False) models to leave the prefix out of the pooled tokens.
        prompt_length = len(self.tokenizer(pre)["input_ids"]) - 1 if pre else 0
        for idx, target in tqdm(self._batches(order, lengths), desc=f"embed {prompt}", unit="batch",
                                disable=not show_progress_bar):
            batch = self.tokenizer.pad({k: [enc[k][i] for i in idx] for k in keys}, padding="max_length",
                                       max_length=target, return_tensors="pt")
            features: dict[str, Any] = {**batch, "modality": "text"}
            if prompt_length:
                features["prompt_length"] = prompt_length
            out[idx] = self._forward(features)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


def embed_texts(model_name_or_path: str | Encoder, texts: Sequence[str], prompt: Prompt = "passage",
                prefix: str | None = None, cfg: EmbedConfig | None = None,
                show_progress_bar: bool = False) -> np.ndarray:
    """Embed texts with a teacher given by hub id, local folder or an already loaded :class:`Encoder`.

    Args:
        model_name_or_path: Hub id, local folder, or an :class:`Encoder`.
        texts: Raw texts.
        prompt: ``query`` or ``passage`` (selects the prefix).
        prefix: Explicit prefix (``"query: "``); ``None`` uses the model's saved prompt.
        cfg: Settings used when loading a model by name (ignored for an :class:`Encoder`).
        show_progress_bar: Show a tqdm bar.

    Returns:
        ``(len(texts), dim)`` float32, L2-normalised rows, input order.
    """
    if isinstance(model_name_or_path, Encoder):
        return model_name_or_path.encode(texts, prompt, prefix, show_progress_bar)
    encoder = Encoder(model_name_or_path, cfg)
    return encoder.encode(texts, prompt, prefix, show_progress_bar)


# --- shards ----------------------------------------------------------------------------------------

def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _shard_name(i: int) -> str:
    return f"shard-{i:05d}"


def _digest(ids: Sequence[str], texts: Sequence[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for i, t in zip(ids, texts, strict=True):
        h.update(i.encode("utf-8"))
        h.update(b"\x00")
        h.update(t.encode("utf-8"))
        h.update(b"\x01")
    return h.hexdigest()


def _chunks(records: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield chunk


def _shard_ok(folder: Path, name: str, entry: dict[str, Any] | None, digest: str, rows: int) -> bool:
    if not entry or entry.get("digest") != digest or entry.get("rows") != rows:
        return False
    npy, ids = folder / f"{name}.npy", folder / f"{name}.ids.txt"
    if not (npy.exists() and ids.exists()):
        return False
    try:
        arr = np.load(npy, mmap_mode="r")
    except (ValueError, OSError):
        return False
    return arr.shape == (rows, entry.get("dim"))


def embed_to_shards(model: str | Encoder, records: Iterable[tuple[str, str]], out_dir: Path,
                    prompt: Prompt, prefix: str | None = None, cfg: EmbedConfig | None = None,
                    total: int | None = None, show_progress_bar: bool = True) -> EmbedResult:
    """Embed ``(id, text)`` records into ``out_dir/shard-NNNNN.npy`` files, resuming where possible.

    Shard ``k`` holds records ``[k * shard_size, (k + 1) * shard_size)``. A shard is reused when the
    manifest lists it with the same content digest (ids and texts) and its file is intact; the
    manifest also records a run fingerprint (model content, prompt, prefix, backend, max length,
    dtype, shard size) and a mismatch discards every shard. The model is loaded only when some
    shard must be computed.

    Args:
        model: Hub id, local folder, or a loaded :class:`Encoder`.
        records: ``(id, text)`` pairs in output order; ids must not contain newlines.
        out_dir: Shard folder (created).
        prompt: ``query`` or ``passage``.
        prefix: Explicit prefix; ``None`` uses the model's saved prompt.
        cfg: Settings (``shard_size``, ``dtype``, ...); an :class:`Encoder` keeps its own for encoding.
        total: Number of records, for the progress bar.
        show_progress_bar: Show a tqdm bar over texts.

    Returns:
        What was computed and reused.

    Raises:
        ValueError: If an id contains a newline.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    cfg = cfg or (model.cfg if isinstance(model, Encoder) else EmbedConfig())
    name = model.model_name_or_path if isinstance(model, Encoder) else model
    encoder = model if isinstance(model, Encoder) else None
    fingerprint = {"model": name, "model_fingerprint": model_fingerprint(name), "prompt": prompt,
                   "prefix": prefix, "backend": cfg.backend, "max_length": cfg.max_length, "dtype": cfg.dtype,
                   "shard_size": cfg.shard_size, "version": _MANIFEST_VERSION}
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(out_dir)
    if manifest is None or manifest.get("fingerprint") != fingerprint:
        if manifest is not None:
            log.warning("embed: %s holds shards of another configuration; recomputing", out_dir)
        for old in out_dir.glob("shard-*"):
            old.unlink()
        manifest = {"fingerprint": fingerprint, "shards": {}, "complete": False}
    manifest["complete"] = False
    _write_json_atomic(out_dir / MANIFEST, manifest)
    result = EmbedResult()
    dim = 0
    label = "queries" if prompt == "query" else "passages"
    bar = tqdm(total=total, desc=f"embed {label}", unit="text", disable=not show_progress_bar)
    n_shards = 0
    for k, chunk in enumerate(_chunks(records, cfg.shard_size)):
        n_shards = k + 1
        ids = [r[0] for r in chunk]
        texts = [r[1] for r in chunk]
        if any("\n" in i or "\r" in i for i in ids):
            raise ValueError(f"shard {k}: ids must not contain newlines")
        shard, digest = _shard_name(k), _digest(ids, texts)
        entry = manifest["shards"].get(shard)
        if _shard_ok(out_dir, shard, entry, digest, len(chunk)):
            result.skipped.append(k)
            dim = int(entry["dim"]) if entry else dim
        else:
            if encoder is None:
                encoder = Encoder(name, cfg)
            t1 = time.perf_counter()
            emb = encoder.encode(texts, prompt, prefix).astype(cfg.dtype)
            result.encode_seconds += time.perf_counter() - t1
            dim = emb.shape[1]
            tmp = out_dir / f"{shard}.tmp.npy"
            np.save(tmp, emb)
            os.replace(tmp, out_dir / f"{shard}.npy")
            (out_dir / f"{shard}.ids.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
            manifest["shards"][shard] = {"rows": len(chunk), "dim": dim, "digest": digest}
            _write_json_atomic(out_dir / MANIFEST, manifest)
            result.computed.append(k)
            result.computed_rows += len(chunk)
        result.rows += len(chunk)
        bar.update(len(chunk))
        bar.set_postfix(computed=len(result.computed), reused=len(result.skipped))
    bar.close()
    if n_shards == 0:  # empty input: the dimension still has to be known for a (0, dim) array
        encoder = encoder or Encoder(name, cfg)
        dim = encoder.dim
    for stale in sorted(out_dir.glob("shard-*")):
        index = int(stale.name.split(".")[0].split("-")[1])
        if index >= n_shards:
            stale.unlink()
            manifest["shards"].pop(_shard_name(index), None)
    manifest.update(complete=True, n_shards=n_shards, rows=result.rows, dim=dim, dtype=cfg.dtype)
    _write_json_atomic(out_dir / MANIFEST, manifest)
    result.dim, result.shards = dim, n_shards
    if encoder is not None and result.computed:
        result.backend, result.device = encoder.backend, encoder.device
        result.prefix = encoder.resolve_prefix(prompt, prefix)
    result.seconds = time.perf_counter() - t0
    return result


def concat_shards(shard_dir: Path, out_path: Path, ids_path: Path) -> int:
    """Concatenate a complete shard folder into one ``.npy`` (streamed) and an id file.

    Args:
        shard_dir: Folder written by :func:`embed_to_shards`.
        out_path: The ``.npy`` to write (``(rows, dim)``, the shards' dtype).
        ids_path: Text file with one id per line, in row order.

    Returns:
        The number of rows.

    Raises:
        RuntimeError: If the shard folder is incomplete.
    """
    manifest = _read_manifest(shard_dir)
    if not manifest or not manifest.get("complete"):
        raise RuntimeError(f"{shard_dir}: shards are incomplete; rerun the embed step")
    rows, dim, n = int(manifest["rows"]), int(manifest["dim"]), int(manifest["n_shards"])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ids_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_npy = out_path.with_name(out_path.name + ".tmp")
    tmp_ids = ids_path.with_name(ids_path.name + ".tmp")
    out = np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.dtype(manifest["dtype"]), shape=(rows, dim))
    pos = 0
    with tmp_ids.open("w", encoding="utf-8") as ids_fh:
        for k in range(n):
            arr = np.load(shard_dir / f"{_shard_name(k)}.npy", mmap_mode="r")
            out[pos:pos + len(arr)] = arr
            pos += len(arr)
            ids_fh.write((shard_dir / f"{_shard_name(k)}.ids.txt").read_text(encoding="utf-8"))
    if pos != rows:
        raise RuntimeError(f"{shard_dir}: manifest says {rows} rows, shards hold {pos}")
    out.flush()
    del out
    os.replace(tmp_npy, out_path)
    os.replace(tmp_ids, ids_path)
    return rows


def _parquet_records(path: Path, id_column: str, text_column: str,
                     batch_rows: int) -> Iterator[tuple[str, str]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, pre_buffer=False)  # streaming: pre_buffer keeps every row group read
    for rb in pf.iter_batches(batch_size=batch_rows, columns=[id_column, text_column]):
        yield from zip(rb.column(0).to_pylist(), rb.column(1).to_pylist(), strict=True)


def embed_parquet(model: str | Encoder, parquet: Path, out_path: Path, ids_path: Path, shard_dir: Path,
                  prompt: Prompt, prefix: str | None = None, cfg: EmbedConfig | None = None,
                  id_column: str = "passage_id", text_column: str = "text",
                  show_progress_bar: bool = True) -> EmbedResult:
    """Embed one text column of a Parquet file into ``out_path`` (+ ``ids_path``), via resumable shards.

    Args:
        model: Hub id, local folder, or a loaded :class:`Encoder`.
        parquet: Input file (streamed in record batches).
        out_path: Output ``.npy`` (rows in file order).
        ids_path: Output id file (one id per line).
        shard_dir: Shard folder; removed after success unless ``cfg.keep_shards``.
        prompt: ``query`` or ``passage``.
        prefix: Explicit prefix; ``None`` uses the model's saved prompt.
        cfg: Settings.
        id_column: Column holding ids.
        text_column: Column holding texts.
        show_progress_bar: Show a tqdm bar.

    Returns:
        What was computed and reused.
    """
    import pyarrow.parquet as pq

    cfg = cfg or (model.cfg if isinstance(model, Encoder) else EmbedConfig())
    total = pq.ParquetFile(parquet).metadata.num_rows
    records = _parquet_records(parquet, id_column, text_column, min(cfg.shard_size, 65536))
    result = embed_to_shards(model, records, shard_dir, prompt, prefix, cfg, total, show_progress_bar)
    concat_shards(shard_dir, out_path, ids_path)
    if not cfg.keep_shards:
        shutil.rmtree(shard_dir)
    return result
