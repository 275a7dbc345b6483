"""Prediction with a saved role model, without PyTorch where it is not needed.

What scoring needs (the config with the label maps, input cleaning, the prediction cache,
batched prediction and decoding) lives here, apart from the PyTorch module in
``role_model``: a model whose ONNX graph was exported before (``runtime.export_onnx``)
loads from that graph and its ``tokenizer.json`` alone (``loading.load_for_inference``), so
``bg-score``, ``bg-serve`` and Spark workers start without importing PyTorch or
transformers (about 3 s of a rescore's start-up; docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from buying_groups.models.glossary import gloss
from buying_groups.models.runtime import prediction_key, use_variant
from buying_groups.models.spelling import Speller
from buying_groups.models.title_expert import EXPERT_NAME
from buying_groups.taxonomy import FUNCTIONS, ROLES, SENIORITIES

MAX_TITLE_CHARS = 256  # longer titles are cut before tokenisation (defined truncation)
MAX_ACTIVITY_CHARS = 2000
CONFIG_NAME = "role_model.json"
TOKENIZER_DIR = "tokenizer"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class RoleModelConfig:
    """Everything needed to rebuild and use the model, saved as ``role_model.json``."""

    products: list[str]
    functions: list[str] = field(default_factory=lambda: list(FUNCTIONS))
    seniorities: list[str] = field(default_factory=lambda: list(SENIORITIES))
    roles: list[str] = field(default_factory=lambda: list(ROLES))
    encoder: dict = field(default_factory=dict)  # the encoder's transformers config
    base_model: str = ""
    max_length: int = 64
    product_embedding_dim: int = 32
    dropout: float = 0.1
    freeze_layers: int = 0  # embeddings + this many lowest encoder layers stay fixed
    advocacy_head: bool = False  # per product: 0 / 1 / 2+ distinct advocacy kinds, an
    # auxiliary target whose prediction feeds the role head (off in models saved before it)
    teacher_forcing: float = 0.5  # training only: share of contacts whose known persona
    # (one-hot) feeds the role head instead of the persona heads' predictions
    inference_variant: str = "fp32"  # how loaders run it by default (models/runtime.py)
    distilled_from: str = ""  # the teacher's model URI or directory, for a distilled student
    distill_alpha: float = 0.0  # training only: weight of the teacher's soft targets in the loss
    transliterate: bool = False  # Cyrillic titles read as Latin (``model_text``); off in
    # models saved before it
    glossary: dict[str, str] = field(default_factory=dict)  # title word -> English gloss,
    # appended to the title (models/glossary.py); none: the title as written
    spelling: dict[str, int] = field(default_factory=dict)  # the training titles' words (and
    # in how many titles each is): an unknown title word one typing slip from one of them is
    # read as it when predicting (models/spelling.py); none: as written
    title_expert_weights: dict[str, float] = field(default_factory=dict)  # per persona head,
    # the weight of the character n-gram title expert (models/title_expert.py); none or 0:
    # the transformer alone
    title_expert_language_weights: dict[str, dict[str, float]] = field(default_factory=dict)
    # per persona head and language, the expert's weight for titles of that language (none:
    # the head's weight above for every title; models saved before it have none)
    role_bias: list[float] = field(default_factory=list)  # per role, a log-probability offset
    # chosen on validation macro-F1 (models/calibration.py); none: the head's own argmax
    persona_temperature: dict[str, float] = field(default_factory=dict)  # per persona head,
    # the temperature its reported probabilities are softened by, fitted on real titles never
    # trained on (models/calibration.py); labels do not change; none: the head's own
    role_rules: list = field(default_factory=list)  # per product, the spec's role rules as
    # role indices [function][seniority][advocacy] (taxonomy.role_rules_table): the role head
    # adds the log-probability of each role under the predicted persona; none: the head alone

    @property
    def id2label(self) -> dict[str, dict[int, str]]:
        return {
            "function": dict(enumerate(self.functions)),
            "seniority": dict(enumerate(self.seniorities)),
            "role": dict(enumerate(self.roles)),
        }

    @property
    def label2id(self) -> dict[str, dict[str, int]]:
        return {h: {v: k for k, v in m.items()} for h, m in self.id2label.items()}

    def to_json(self) -> dict:
        d = asdict(self)
        d["model_type"] = "buying_groups.role_model"
        d["id2label"] = {h: {str(k): v for k, v in m.items()} for h, m in self.id2label.items()}
        return d

    def to_dict(self) -> dict:  # what transformers' MLflow callback logs as params
        d = self.to_json()
        d.pop("encoder")
        d.pop("role_rules")  # a table, not a parameter (and too long for one)
        d.pop("glossary")
        d.pop("spelling")
        return d

    @classmethod
    def from_json(cls, d: dict) -> RoleModelConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def clean_inputs(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Titles and activity texts as the model reads them: strings, bounded length.

    Raises ``ValueError`` naming the column and row for a missing column or a non-text value
    (None/NaN count as empty text).
    """
    out = []
    for col, limit in (("job_title", MAX_TITLE_CHARS), ("activity_text", MAX_ACTIVITY_CHARS)):
        if col not in frame.columns:
            raise ValueError(f"missing input column '{col}' (expected job_title, activity_text)")
        values = frame[col].tolist()
        texts = []
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                texts.append("")
            elif isinstance(v, str):
                texts.append(v[:limit])
            else:
                raise ValueError(f"column '{col}', row {i}: expected text, got {type(v).__name__}")
        out.append(texts)
    return out[0], out[1]


# Russian / Ukrainian / Belarusian Cyrillic to Latin (close to ISO 9 / BGN): an English
# tokenizer splits Cyrillic into single characters, while "direktor po marketingu" shares
# word pieces with "director" and "marketing".
_LATIN = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya", "і": "i",
    "ї": "yi", "є": "ye", "ґ": "g", "ў": "u",
}  # fmt: skip
_TRANSLIT = str.maketrans(_LATIN | {k.upper(): v.capitalize() for k, v in _LATIN.items()})
_HAS_CYRILLIC = re.compile("[\u0400-\u04ff]")


def model_text(text: str, config: RoleModelConfig) -> str:
    """A title as the model reads it: with its words' English gloss and transliterated to
    Latin, if the model was trained so."""
    text = gloss(text, config.glossary)
    if config.transliterate and _HAS_CYRILLIC.search(text):
        return text.translate(_TRANSLIT)
    return text


def encode_pairs(tokenizer, config: RoleModelConfig, titles: list[str], texts: list[str]) -> dict:  # noqa: ANN001
    """Token ids of (title, activity text) pairs, truncated longest-first to the model's
    length: the one place that defines what the model reads, in training and prediction."""
    return tokenizer(
        [model_text(t, config) for t in titles],
        texts,
        truncation="longest_first",
        max_length=config.max_length,
    )


class _Entries:
    """One model's cached probabilities: a row per input in one array per head (grown by
    doubling), found by the input's key."""

    def __init__(self, keys: list[bytes] = (), heads: tuple[np.ndarray, ...] = ()) -> None:
        self.row = dict(zip(keys, range(len(keys)), strict=True))
        self.heads = list(heads)  # function (n, F), seniority (n, S), role (n, P, R)

    def find(self, keys: list[bytes]) -> np.ndarray:
        """Each key's row, -1 where it is not cached."""
        return np.fromiter((self.row.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    def add(self, keys: list[bytes], heads: tuple[np.ndarray, ...]) -> None:
        """New keys (not cached yet) and their probabilities."""
        n, need = len(self.row), len(self.row) + len(keys)
        if not self.heads:
            self.heads = [np.empty((0, *h.shape[1:]), np.float32) for h in heads]
        if need > len(self.heads[0]):
            extra = max(need, 2 * len(self.heads[0]), 1024) - n
            self.heads = [
                np.concatenate([h[:n], np.empty((extra, *h.shape[1:]), h.dtype)])
                for h in self.heads
            ]
        for h, new in zip(self.heads, heads, strict=True):
            h[n:need] = new
        self.row.update(zip(keys, range(n, need), strict=True))


class PredictionCache:
    """Class probabilities of inputs a model has already scored, by the model's weights
    digest and a hash of each (title, activity text): a rerun encodes only new or changed
    inputs, and a different model never sees another's entries."""

    def __init__(self, limit: int | None = None) -> None:
        self.tables: dict[str, _Entries] = {}
        self.used: set[bytes] = set()  # keys looked up or added (what ``save`` keeps)
        self.hits = self.misses = 0
        # At most this many entries per model, emptied when full (a long-running server
        # keeps memory bounded; ``used`` is not tracked then: nothing is saved).
        self.limit = limit

    def merge(self, other: PredictionCache) -> None:
        """Add the entries of ``other`` that this cache lacks (unless this one is bounded)."""
        if self.limit is not None:
            return
        for digest, theirs in other.tables.items():
            mine = self.tables.setdefault(digest, _Entries())
            new = [k for k in theirs.row if k not in mine.row]
            if new:
                rows = np.fromiter((theirs.row[k] for k in new), dtype=np.int64, count=len(new))
                mine.add(new, tuple(h[rows] for h in theirs.heads))
            self.used.update(theirs.row)

    @staticmethod
    def key(title: str, text: str) -> bytes:
        return hashlib.blake2b(f"{title}\x1f{text}".encode(), digest_size=16).digest()

    def save(self, path: Path, digest: str, keep: set[bytes] | None = None) -> int:
        """Write one model's entries (those in ``keep``, if given) as an Arrow IPC (Feather)
        file, atomically. Not Parquet: probabilities do not compress, and reading and
        writing 150,000 entries took 0.4 and 0.2 s as Parquet, 0.05 s each as IPC."""
        import pyarrow as pa
        import pyarrow.feather as feather

        from buying_groups.data.io import atomic_write

        entries = self.tables.get(digest) or _Entries()
        kept = [(k, i) for k, i in entries.row.items() if keep is None or k in keep]
        rows = np.fromiter((i for _, i in kept), dtype=np.int64, count=len(kept))
        cols = {"key": pa.array([k for k, _ in kept], pa.binary(16))}
        for name, head in zip(
            ("function", "seniority", "role"), entries.heads or [None] * 3, strict=True
        ):
            values = head[rows].reshape(len(rows), -1) if head is not None else np.zeros((0, 1))
            flat = pa.array(values.reshape(-1).astype(np.float32, copy=False))
            cols[name] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        out = pa.table(cols).replace_schema_metadata({"weights_digest": digest})
        atomic_write(
            Path(path), lambda p: feather.write_feather(out, p, compression="uncompressed")
        )
        return len(kept)

    def load(self, path: Path, digest: str, n_products: int) -> int:
        """Read entries written by ``save`` for the same weights; other files are ignored."""
        import pyarrow as pa
        import pyarrow.feather as feather

        try:
            table = feather.read_table(path, memory_map=False)
        except pa.ArrowInvalid:  # not an IPC file (e.g. a cache an older version wrote)
            return 0
        meta = table.schema.metadata or {}
        if meta.get(b"weights_digest", b"").decode() != digest:
            return 0
        keys = table.column("key").to_pylist()
        if not keys:
            return 0
        f, s, r = (  # fixed-size lists: one flat array each, reshaped
            table.column(c).combine_chunks().flatten().to_numpy().reshape(len(keys), -1)
            for c in ("function", "seniority", "role")
        )
        self.tables[digest] = _Entries(keys, (f, s, r.reshape(len(keys), n_products, -1)))
        return len(keys)


_CACHE: list[PredictionCache] = []  # the active cache, if any (see ``caching``)


def active_cache() -> PredictionCache | None:
    """The cache ``predict_proba`` uses now (the innermost ``caching()``), if any."""
    return _CACHE[-1] if _CACHE else None


@contextmanager
def caching(cache: PredictionCache | None = None) -> Iterator[PredictionCache]:
    """Within the block, ``predict_proba`` of a loaded model reuses and fills ``cache``."""
    cache = cache or PredictionCache()
    _CACHE.append(cache)
    try:
        yield cache
    finally:
        _CACHE.remove(cache)


def predict_proba(
    model,  # noqa: ANN001  (a RoleModel or an ExportedRoleModel)
    tokenizer,  # noqa: ANN001
    frame: pd.DataFrame,
    batch_size: int = 32,
) -> dict[str, np.ndarray]:
    """Class probabilities per head: function (n, F), seniority (n, S), role (n, P, R).

    Inputs are sorted by length and batched so that padding is small (batches of 32 ran
    10-15% faster than 64 on 2 cores, docs/benchmarks.md); identical
    (title, activity) pairs are encoded once, and inside ``caching()`` pairs this model
    scored before are not encoded again. The model runs as its variant (``use_variant``;
    PyTorch fp32 unless set).
    """
    titles, texts = clean_inputs(frame)
    model.eval()
    if getattr(model, "runner", None) is None:
        use_variant(model, tokenizer, "fp32")
    pairs = pd.Series(list(zip(titles, texts, strict=True)))
    codes, uniques = pd.factorize(pairs)
    n_u = len(uniques)
    cfg = model.config
    f = np.zeros((n_u, len(cfg.functions)), dtype=np.float32)
    s = np.zeros((n_u, len(cfg.seniorities)), dtype=np.float32)
    r = np.zeros((n_u, len(cfg.products), len(cfg.roles)), dtype=np.float32)
    todo = np.arange(n_u)
    digest = prediction_key(model)
    cache = _CACHE[-1] if _CACHE and digest else None
    if cache is not None:
        entries = cache.tables.setdefault(digest, _Entries())
        keys = [PredictionCache.key(t, a) for t, a in uniques]
        rows = entries.find(keys)
        hit = rows >= 0
        if hit.any():
            f[hit], s[hit], r[hit] = (head[rows[hit]] for head in entries.heads)
        if cache.limit is None:
            cache.used.update(keys)
        elif len(entries.row) + int((~hit).sum()) > cache.limit:
            entries = cache.tables[digest] = _Entries()
        todo = np.flatnonzero(~hit)
        cache.hits += int(hit.sum())
        cache.misses += len(todo)
    if len(todo) == 0:
        return {"function": f[codes], "seniority": s[codes], "role": shift(r[codes], cfg.role_bias)}
    titles_todo = [uniques[i][0] for i in todo]
    speller = model_speller(model, tokenizer)
    if speller is not None:  # "Sales Maanger" read as "Sales Manager" by both the expert and
        titles_todo = [speller(t) for t in titles_todo]  # the encoder (not in training)
    priors = expert_priors(model, titles_todo)
    enc = encode_pairs(tokenizer, cfg, titles_todo, [uniques[i][1] for i in todo])
    order = todo[np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")]
    pos = {u: j for j, u in enumerate(todo)}  # unique index -> row of enc
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        rows = [pos[i] for i in idx]
        batch = tokenizer.pad({k: [enc[k][j] for j in rows] for k in enc}, return_tensors="np")
        batch = dict(batch) | {k: v[rows] for k, v in priors.items()}
        f[idx], s[idx], r[idx] = (softmax(x) for x in model.runner(batch))
    if cache is not None:
        entries.add([keys[i] for i in todo], (f[todo], s[todo], r[todo]))
    return {"function": f[codes], "seniority": s[codes], "role": shift(r[codes], cfg.role_bias)}


def model_speller(model, tokenizer) -> Speller | None:  # noqa: ANN001
    """The model's speller (``models.spelling``), built once per vocabulary; None where the
    model has no spelling vocabulary. The encoder's whole words and the glossary's words
    count as known, so they are never corrected."""
    vocabulary = model.config.spelling
    if not vocabulary:
        return None
    cached = getattr(model, "speller", None)
    if cached is None or cached[0] is not vocabulary:
        known = {w.lstrip("▁Ġ").lower() for w in tokenizer.get_vocab()}
        known = {w for w in known if w.isalpha()} | set(model.config.glossary)
        cached = (vocabulary, Speller(vocabulary, known))
        model.speller = cached
    return cached[1]


def expert_priors(model, titles: list[str]) -> dict[str, np.ndarray]:  # noqa: ANN001
    """The title expert's persona of each title and its pooling weight per persona head
    (0 without a title), as the graph's inputs (``runtime.PRIORS``); none where the model
    has no expert or pools with weight 0 everywhere (the transformer's persona alone)."""
    cfg = model.config
    expert = getattr(model, "title_expert", None)
    by_language = cfg.title_expert_language_weights
    if (
        not titles
        or expert is None
        or not (
            any(w > 0 for w in cfg.title_expert_weights.values())
            or any(w > 0 for per in by_language.values() for w in per.values())
        )
    ):
        return {}
    has_title = np.array([bool(t.strip()) for t in titles])
    guess = expert.predict_proba(titles)
    weights = expert.weights(titles, cfg.title_expert_weights, by_language)
    weight = np.stack([weights["function"], weights["seniority"]], axis=1) * has_title[:, None]
    return {
        "function_prior": guess["function"].astype(np.float32),
        "seniority_prior": guess["seniority"].astype(np.float32),
        "prior_weight": weight.astype(np.float32),
    }


def shift(proba: np.ndarray, offsets: list[float]) -> np.ndarray:
    """Probabilities over the last axis moved by per-class log offsets (none: unchanged).
    Applied after the cache, which holds the head's own outputs."""
    if not offsets:
        return proba
    return softmax(np.log(np.clip(proba, 1e-12, None)) + np.asarray(offsets, dtype=np.float32))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def tempered(model_config: RoleModelConfig, proba: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``proba`` with each persona head's ``persona_temperature`` applied (log-probabilities
    divided by it): the probabilities a user reads. The most likely label is unchanged."""
    out = dict(proba)
    for head, t in model_config.persona_temperature.items():
        out[head] = softmax(np.log(np.clip(proba[head], 1e-12, None)) / float(t))
    return out


def decode(model_config: RoleModelConfig, proba: dict[str, np.ndarray]) -> pd.DataFrame:
    """Most likely labels (and their reported probabilities, ``tempered``) per head and product.
    Labels come from ``proba`` itself: a near-tie rounded level by the temperature cannot
    change one."""
    shown = tempered(model_config, proba)
    out = pd.DataFrame()
    for head, labels in (
        ("function", model_config.functions),
        ("seniority", model_config.seniorities),
    ):
        best = proba[head].argmax(1)
        out[head] = np.array(labels)[best]
        out[f"{head}_proba"] = shown[head][np.arange(len(best)), best]
    roles = np.array(model_config.roles)
    for j, product in enumerate(model_config.products):
        out[f"role_{product}"] = roles[proba["role"][:, j].argmax(1)]
        out[f"role_{product}_proba"] = proba["role"][:, j].max(1)
    return out


def weights_digest(directory: Path | str) -> str:
    """What prediction caches and exported graphs key on: a saved model's exact config,
    weights and title expert (SHA-256 of the files)."""
    directory = Path(directory)
    h = hashlib.sha256((directory / CONFIG_NAME).read_bytes())
    expert = [EXPERT_NAME] if (directory / EXPERT_NAME).exists() else []  # where it has one
    for name in [WEIGHTS_NAME, *expert]:
        with open(directory / name, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class PairTokenizer:
    """A saved fast tokenizer (``tokenizer.json``) read by the ``tokenizers`` library alone,
    answering the two calls ``predict_proba`` makes of a transformers tokenizer: encode
    (title, text) pairs with longest-first truncation, and pad a batch to numpy arrays. Same
    ids as ``AutoTokenizer`` (tested), without importing transformers and PyTorch."""

    def __init__(self, directory: Path | str) -> None:
        from tokenizers import Tokenizer

        directory = Path(directory)
        self.backend = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.backend.no_padding()
        self.backend.no_truncation()
        settings = json.loads((directory / "tokenizer_config.json").read_text())
        pad = settings.get("pad_token", "[PAD]")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token_id = self.backend.token_to_id(pad) or 0
        if settings.get("padding_side", "right") != "right":
            raise ValueError("PairTokenizer pads on the right only")

    def __call__(
        self, titles: list[str], texts: list[str], truncation: str, max_length: int
    ) -> dict[str, list[list[int]]]:
        if truncation != "longest_first":
            raise ValueError(f"PairTokenizer truncates longest_first only, not {truncation}")
        self.backend.enable_truncation(max_length, strategy="longest_first")
        encodings = self.backend.encode_batch(list(zip(titles, texts, strict=True)))
        return {
            "input_ids": [e.ids for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
        }

    def get_vocab(self) -> dict[str, int]:
        return self.backend.get_vocab()

    def pad(self, features: dict[str, list[list[int]]], return_tensors: str = "np") -> dict:
        if return_tensors != "np":
            raise ValueError("PairTokenizer pads to numpy arrays only")
        width = max(len(ids) for ids in features["input_ids"])
        out = {}
        for name, rows in features.items():
            fill = self.pad_token_id if name == "input_ids" else 0
            array = np.full((len(rows), width), fill, dtype=np.int64)
            for i, row in enumerate(rows):
                array[i, : len(row)] = row
            out[name] = array
        return out


class ExportedRoleModel:
    """A saved role model run from its exported ONNX graph: the config, the weights digest
    the graph was exported under, and (after ``use_variant``) the ONNX Runtime session."""

    training = False

    def __init__(self, config: RoleModelConfig, digest: str) -> None:
        self.config = config
        self.weights_digest = digest
        self.runner = None

    def eval(self) -> ExportedRoleModel:
        return self
