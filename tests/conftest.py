"""Shared fixtures: a tiny random BERT with a WordPiece tokenizer trained here, and small data files.

The tiny model is saved with `save_pretrained`, so the real `from_pretrained` paths run.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config: pytest.Config) -> None:
    """The tokenized-data cache goes to a folder of this session, never the user's ~/.cache.

    Set in os.environ before any test runs, so `encoderkit` subprocesses and forkserver children
    inherit it.
    """
    folder = tempfile.mkdtemp(prefix="encoderkit-token-cache-")
    os.environ["ENCODERKIT_CACHE"] = folder
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

POSITIVE = ["good", "great", "lovely", "superb", "wonderful", "pleasant", "brilliant", "fine"]
NEGATIVE = ["bad", "awful", "poor", "terrible", "boring", "dreadful", "weak", "dull"]
NOUNS = ["film", "book", "meal", "hotel", "phone", "concert", "course", "game", "shop", "show"]
FILLER = ["the", "this", "a", "really", "very", "was", "is", "quite", "and", "so", "it", "my"]


def sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    """Learnable toy data: the label is carried by one sentiment word among filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        word = rng.choice(POSITIVE if positive else NEGATIVE)
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 12))]
        words.insert(rng.randint(0, len(words)), f"{rng.choice(NOUNS)} {word}")
        rows.append({"text": " ".join(words), "label": "positive" if positive else "negative"})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def build_tiny_bert(folder: Path, corpus: list[str], vocab_size: int = 300, lowercase: bool = True) -> Path:
    """Train a WordPiece tokenizer on `corpus` and save it with a random 2-layer, 32-wide BERT."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
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
        model_max_length=128,
    )
    config = BertConfig(
        vocab_size=fast.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
        # Dropout on a 32-wide model slows learning a lot; keep a little (attention) so the
        # resume tests still depend on restoring the RNG.
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.1,
    )
    # Seeded: the weights must not depend on which tests ran before (the global RNG) or where.
    # (Not seed 0: the tests build `scratch` models with seed 0, which must differ from these.)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = BertModel(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def _build_tiny_model(folder: Path) -> Path:
    corpus = [r["text"] for r in sentiment_rows(400, seed=1)] + [
        " ".join(POSITIVE + NEGATIVE + NOUNS + FILLER)
    ]
    corpus += ["is this a question? what was it? the answer is here, in the context.", "one two three four"]
    return build_tiny_bert(folder, corpus)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a 2-layer, 32-wide random BERT folder with its WordPiece tokenizer."""
    return str(_build_tiny_model(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="session")
def sentiment_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(train.jsonl, eval.jsonl) of toy sentiment data."""
    folder = tmp_path_factory.mktemp("sentiment")
    train = write_jsonl(folder / "train.jsonl", sentiment_rows(96, seed=2))
    dev = write_jsonl(folder / "eval.jsonl", sentiment_rows(32, seed=3))
    return str(train), str(dev)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data when it is there (benchmark data); tests using it skip cleanly otherwise."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1600",
)


@pytest.fixture
def chromium(tmp_path_factory: pytest.TempPathFactory):
    """A headless Debian Chromium driven by Selenium through Debian's chromedriver.

    `make test` installs both (packages chromium and chromium-driver); where that was impossible the
    browser tests skip and say why instead of failing.
    """
    import shutil

    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("headless browser test: chromium and chromedriver not installed (`make browser`)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
