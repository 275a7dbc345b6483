"""Evaluate any role predictor the same way: metrics per split and language, per-class
reports and confusion matrices; and measure a role model's inference variants."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report

from buying_groups.data.examples import cap
from buying_groups.data.real_titles import MIN_LANGUAGE_TITLES, persona_roles
from buying_groups.data.splits import ROLE_SPLITS
from buying_groups.evaluate import (
    calibration_error,
    evaluate_predictions,
    head_metrics,
    stack_roles,
)
from buying_groups.models.inference import (
    RoleModelConfig,
    active_cache,
    caching,
    clean_inputs,
    decode,
    encode_pairs,
    predict_proba,
    shift,
)
from buying_groups.models.invariance import context_invariance
from buying_groups.models.runtime import available_variants, check_variant, use_variant
from buying_groups.plots import confusion_matrix_figure
from buying_groups.taxonomy import FUNCTIONS, ROLES, SENIORITIES, Catalog

Predictor = Callable[[pd.DataFrame], pd.DataFrame]
EVAL_SPLITS = tuple(s for s in ROLE_SPLITS if s != "train")


def evaluate_predictor(
    predict: Predictor,
    examples: pd.DataFrame,
    catalog: Catalog,
    splits: tuple[str, ...] = EVAL_SPLITS,
    figures: bool = True,
    real: pd.DataFrame | None = None,
    contexts: Iterable[str] = (),
) -> tuple[dict[str, float], dict[str, dict], dict[str, object]]:
    """(flat metrics, per-class reports, confusion-matrix figures) on every split.

    Metrics: ``<split>/<head>_accuracy|macro_f1`` for each split and
    ``lang_<language>/...`` per language over the evaluation splits; with ``real`` (the
    real-title set, ``data.real_titles.real_title_eval``) also ``real/<head>_...`` and
    ``real/<language>/<head>_...`` for the persona heads and the roles their labelled
    persona implies with no activity (``real_title_metrics``), and the reports hold every
    real title's prediction (``real/predictions``, a frame); with ``contexts`` too, how
    often the real titles' persona holds with each one (``real_context/...``,
    ``models.invariance``).
    """
    frame = examples[examples["split"].isin(splits)]
    pred = predict(frame)
    pred.index = frame.index
    metrics = evaluate_predictions(frame, pred, catalog.names, groups=splits)
    by_lang = evaluate_predictions(frame, pred, catalog.names, group_col="language")
    metrics.update({f"lang_{k}": v for k, v in by_lang.items()})
    reports: dict[str, dict | pd.DataFrame] = {}
    figs: dict[str, object] = {}
    heads = {"function": FUNCTIONS, "seniority": SENIORITIES, "role": ROLES}
    if real is not None:
        real_pred = predict(real)
        metrics.update(real_title_metrics(real, real_pred, catalog))
        metrics.update(context_invariance(predict, real, real_pred, contexts)[0])
        # every title's prediction beside its label: errors to browse, gaps to bootstrap
        reports["real/predictions"] = pd.DataFrame(
            {
                "title": real["job_title"].to_numpy(),
                "language": real["language"].to_numpy(),
                **{f"{h}_true": real[h].to_numpy() for h in ("function", "seniority")},
                **{h: real_pred[h].to_numpy() for h in ("function", "seniority")},
                **{  # the reported probabilities, to rebuild the confidence bands
                    c: real_pred[c].to_numpy()
                    for c in ("function_proba", "seniority_proba")
                    if c in real_pred.columns
                },
            }
        )
        for head in ("function", "seniority"):
            reports[f"real/{head}"] = classification_report(
                real[head], real_pred[head], output_dict=True, zero_division=0
            )
            if figures:
                figs[f"plots/confusion_real_{head}.png"] = confusion_matrix_figure(
                    real[head], real_pred[head], heads[head], f"{head} - real titles"
                )
    for split in splits:
        mask = (frame["split"] == split).to_numpy()
        if not mask.any():
            continue
        t, p = frame[mask], pred[mask]
        for head, labels in heads.items():
            if head == "role":
                yt, yp = stack_roles(t, catalog.names), stack_roles(p, catalog.names)
                known = yt.notna().to_numpy()
                yt, yp = yt[known], yp[known]
            else:
                known = t[head].notna().to_numpy()
                yt, yp = t[head][known], p[head][known]
            reports[f"{split}/{head}"] = classification_report(
                yt,
                yp,
                labels=[x for x in labels if x in set(yt) | set(yp)],
                output_dict=True,
                zero_division=0,
            )
            if figures and split in ("test", "test_ood") and len(yt):
                figs[f"plots/confusion_{split}_{head}.png"] = confusion_matrix_figure(
                    yt, yp, labels, f"{head} - {split}"
                )
    return metrics, reports, figs


def real_title_metrics(
    truth: pd.DataFrame, pred: pd.DataFrame, catalog: Catalog | None = None
) -> dict[str, float]:
    """Persona accuracy and macro-F1 on real titles: ``real/<head>_<metric>`` over all of
    them and ``real/<language>/<head>_<metric>`` for each language with at least
    ``MIN_LANGUAGE_TITLES`` titles. With ``catalog`` (and role columns in ``pred``), the
    ``role`` head too, over every title x product: real titles carry no roles, but with no
    activity (as they are scored) the spec's rules give each labelled persona one
    (``data.real_titles.persona_roles``), so this measures whether a real title's roles follow its
    persona."""
    out: dict[str, float] = {}
    groups = {"": np.ones(len(truth), dtype=bool)}
    counts = truth["language"].value_counts()
    for lang in sorted(counts[counts >= MIN_LANGUAGE_TITLES].index):
        groups[f"{lang}/"] = (truth["language"] == lang).to_numpy()
    heads = {h: (truth[h].to_numpy(), pred[h].to_numpy()) for h in ("function", "seniority")}
    if catalog is not None and all(f"role_{p}" in pred.columns for p in catalog.names):
        heads["role"] = (
            np.stack([persona_roles(truth, p) for p in catalog.products], axis=1),
            np.stack([pred[f"role_{p}"].to_numpy() for p in catalog.names], axis=1),
        )
    for prefix, mask in groups.items():
        for head, (t, p) in heads.items():
            for k, v in head_metrics(t[mask].ravel(), p[mask].ravel()).items():
                out[f"real/{prefix}{head}_{k}"] = v
    for head in ("function", "seniority"):  # do its reported probabilities hold on real titles?
        if f"{head}_proba" in pred.columns:
            right = truth[head].to_numpy() == pred[head].to_numpy()
            out[f"real/{head}_calibration_error"] = calibration_error(pred[f"{head}_proba"], right)
    return out


def confidence_table(
    truth: pd.DataFrame, pred: pd.DataFrame, head: str = "function",
    thresholds: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9),
) -> pd.DataFrame:  # fmt: skip
    """How far the reported probability of ``head``'s label can be trusted: per threshold,
    the share of titles at or above it, their accuracy and the accuracy of those below (where
    to send titles to review), and the calibration error over all."""
    right = truth[head].to_numpy() == pred[head].to_numpy()
    conf = pred[f"{head}_proba"].to_numpy()
    rows = []
    for t in thresholds:
        above = conf >= t
        rows.append(
            {
                "threshold": t,
                "share_at_or_above": float(above.mean()),
                "accuracy_at_or_above": float(right[above].mean()) if above.any() else np.nan,
                "accuracy_below": float(right[~above].mean()) if (~above).any() else np.nan,
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["calibration_error"] = calibration_error(conf, right)
    return table


def real_title_table(metrics: dict[str, float]) -> pd.DataFrame:
    """``real/...`` metrics as a table: one row per language (``all`` first)."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if not key.startswith("real/") or key.endswith("_calibration_error"):
            continue  # the table compares labels; the probabilities' error is logged apart
        parts = key.split("/")
        lang, name = ("all", parts[1]) if len(parts) == 2 else (parts[1], parts[2])
        rows.setdefault(lang, {})[name] = value
    return pd.DataFrame.from_dict(rows, orient="index")


@dataclass
class VariantRuns:
    """Each inference variant's timed pass over the same contacts: contacts per second and
    the head's own probabilities (no role offsets), to be judged once the offsets are set."""

    frame: pd.DataFrame
    contacts_per_s: dict[str, float] = field(default_factory=dict)
    proba: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def measure_variants(
    model,  # noqa: ANN001
    tokenizer,  # noqa: ANN001
    frame: pd.DataFrame,
    variants: list[str] | None = None,
) -> VariantRuns:
    """Run and time every variant (fp32 first) on ``frame``. Inside ``caching()``, each pass
    is timed on the model, never on answers cached before, and then joins the cache, so
    that later fp32 passes over ``frame`` (the role offsets, the evaluation) reuse it."""
    runs = VariantRuns(frame)
    outer = active_cache()
    bias, model.config.role_bias = model.config.role_bias, []
    try:
        for variant in variants or available_variants():
            use_variant(model, tokenizer, variant)  # (exports the graph, if ONNX)
            _warm_up(model, tokenizer, frame.head(32))
            with caching() as own:
                started = time.perf_counter()
                runs.proba[variant] = predict_proba(model, tokenizer, frame)
                runs.contacts_per_s[variant] = len(frame) / (time.perf_counter() - started)
            if outer is not None:
                outer.merge(own)
    finally:
        model.config.role_bias = bias
        use_variant(model, tokenizer, "fp32")
    return runs


def choose_variant(
    model_config: RoleModelConfig,
    runs: VariantRuns,
    head_f1: Callable[[pd.DataFrame], dict[str, float]],
    tolerance: float = 0.005,
) -> tuple[str, pd.DataFrame]:
    """The fastest variant whose macro-F1 is within ``tolerance`` of fp32's on every head
    (``head_f1`` scores decoded predictions), and the measurements behind it. The roles are
    decoded with ``model_config``'s role offsets, as loaders serve them."""
    rows, reference = {}, None
    for variant, proba in runs.proba.items():
        pred = decode(model_config, proba | {"role": shift(proba["role"], model_config.role_bias)})
        reference = pred if reference is None else reference
        heads = [c for c in pred.columns if not c.endswith("_proba")]
        agree = float(np.mean([(pred[h] == reference[h]).mean() for h in heads]))
        rows[variant] = {"contacts_per_s": runs.contacts_per_s[variant], "agreement": agree}
        rows[variant] |= {f"{h}_macro_f1": v for h, v in head_f1(pred).items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    f1 = [c for c in table.columns if c.endswith("_macro_f1")]
    ok = (table[f1] >= table.loc["fp32", f1] - tolerance).all(axis=1)
    choice = str(table[ok]["contacts_per_s"].idxmax())
    table["chosen"] = table.index == choice
    return choice, table


def _warm_up(model, tokenizer, frame: pd.DataFrame) -> None:  # noqa: ANN001
    """One batch through the variant's runner (its first-call setup), bypassing
    ``predict_proba`` so that no prediction cache holds it before the timed pass."""
    enc = encode_pairs(tokenizer, model.config, *clean_inputs(frame))
    model.runner(dict(tokenizer.pad({k: list(enc[k]) for k in enc}, return_tensors="np")))


def measure_for_choice(
    icfg: Mapping,
    model,  # noqa: ANN001
    tokenizer,  # noqa: ANN001
    validation: pd.DataFrame,
) -> VariantRuns | None:
    """With ``inference.variant=auto``, the candidate variants' runs on validation
    (``select_samples`` of its contacts); None for a configured variant. Where bf16 is
    native, the fp32 ONNX graph is not measured: bf16 ran 1.4-1.6x faster than it on every
    such host, and exporting and timing it took about 12 s of every training run."""
    if icfg["variant"] != "auto":
        return None
    sample = cap(validation, icfg.get("select_samples"), 0).reset_index(drop=True)
    candidates = available_variants()
    if "bf16" in candidates:  # the fp32 ONNX graph never beat native bf16 (benchmarks.md)
        candidates.remove("onnx")
    return measure_variants(model, tokenizer, sample, candidates)


def judged_macro_f1(truth: pd.Series, pred: pd.Series, min_labels: int = 0) -> float:
    """Macro-F1 over the classes with at least ``min_labels`` known labels in ``truth`` (all
    present classes where none has that many); rows without a label are left out. On demo's
    validation split `champion` has 17 role labels: one contact moves its F1 by 3-6 points
    and role macro-F1 by 0.5-1, the whole variant tolerance, so a variant judged on it is
    judged on one contact (docs/benchmarks.md, 2026-12-06, thirteenth session)."""
    known = truth.notna().to_numpy()
    return head_metrics(truth[known], np.asarray(pred)[known], min_labels)["macro_f1"]


def pick_variant(
    icfg: Mapping,
    model_config: RoleModelConfig,
    runs: VariantRuns | None,
    catalog: Catalog,
) -> tuple[str, pd.DataFrame]:
    """The configured inference variant (``inference`` config group), or with ``auto`` the
    fastest measured one (``measure_for_choice``) whose validation macro-F1 stays within
    ``tolerance`` of fp32 on every head, over the classes with ``min_class_labels`` or more
    validation labels; and the measurements behind the choice."""
    if runs is None:
        return check_variant(icfg["variant"]), pd.DataFrame()
    floor = int(icfg.get("min_class_labels") or 0)
    truth = runs.frame

    def head_f1(pred: pd.DataFrame) -> dict[str, float]:
        out = {h: judged_macro_f1(truth[h], pred[h], floor) for h in ("function", "seniority")}
        roles = stack_roles(truth, catalog.names), stack_roles(pred, catalog.names)
        return out | {"role": judged_macro_f1(*roles, floor)}

    return choose_variant(model_config, runs, head_f1, float(icfg["tolerance"]))


def real_title_gaps(
    truth: pd.DataFrame,
    predictions: Mapping[str, pd.DataFrame],
    model: str = "transformer",
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> pd.DataFrame:
    """``model``'s real-title macro-F1 minus every other model's, per persona head, over all
    titles and per language (``MIN_LANGUAGE_TITLES`` or more), with a paired bootstrap
    interval: the titles are resampled with replacement, the same draw for both models, and
    the gap recomputed ``n_boot`` times. A gap whose interval holds 0 is one this set cannot
    tell from noise (a language other than English has 295-367 titles; a few of a rare
    class move its macro-F1 by points). Columns: head, language, other, gap, low, high."""
    rng = np.random.default_rng(seed)
    counts = truth["language"].value_counts()
    groups = {"all": np.ones(len(truth), dtype=bool)}
    for lang in sorted(counts[counts >= MIN_LANGUAGE_TITLES].index):
        groups[lang] = (truth["language"] == lang).to_numpy()
    rows = []
    for lang, mask in groups.items():
        m = int(mask.sum())
        if m == 0:
            continue
        draws = rng.integers(0, m, (n_boot, m))
        weights = np.zeros((n_boot, m))
        np.add.at(weights, (np.arange(n_boot)[:, None], draws), 1.0)
        for head in ("function", "seniority"):
            t = truth[head].to_numpy().astype(str)[mask]
            mine = np.asarray(predictions[model][head]).astype(str)[mask]
            for other, pred in predictions.items():
                if other == model:
                    continue
                theirs = np.asarray(pred[head]).astype(str)[mask]
                boot = _macro_f1(weights, t, mine) - _macro_f1(weights, t, theirs)
                gap = head_metrics(t, mine)["macro_f1"] - head_metrics(t, theirs)["macro_f1"]
                low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
                rows.append((head, lang, other, gap, float(low), float(high)))
    return pd.DataFrame(rows, columns=["head", "language", "other", "gap", "low", "high"])


def _macro_f1(weights: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Macro-F1 (over the classes present in the truth, as ``head_metrics``) of every
    bootstrap draw at once: ``weights`` holds each draw's count of every title."""
    classes = np.unique(truth)
    is_true = (truth[:, None] == classes).astype(float)
    is_pred = (pred[:, None] == classes).astype(float)
    support, predicted = weights @ is_true, weights @ is_pred
    hits = weights @ (is_true * is_pred)
    denom = support + predicted
    f1 = np.divide(2 * hits, denom, out=np.zeros_like(hits), where=denom > 0)
    present = support > 0
    return (f1 * present).sum(1) / np.maximum(present.sum(1), 1)
