"""Role decision offsets and persona temperatures, chosen after training.

Role decision offsets: where the role head's argmax should fall, chosen on validation.

The role head trains with class weights (``trainer.role_weight_power``) so that rare roles
are not drowned by ``none``; the weights also push its probabilities towards the rare roles
by an amount that varies from one training run to the next (seed, data order, title lists).
One log-probability offset per role, chosen after training to maximise validation macro-F1
(the metric the model is picked on) and averaged over bootstrap resamples, puts the decision
back where validation says it belongs. The offsets live in the model's config
(``role_bias``) and ``predict_proba`` applies them, so every consumer (evaluation, batch,
REST, the qualifier) sees the same probabilities. A model saved without offsets predicts as before.

Persona temperature: on real titles it never saw, the function head reports about 0.86 where
it is right about 0.71 of the time (docs/role-model.md); on the generator's and the
hand-written titles it is calibrated. One temperature, fitted by log-loss on real occupation
names that no training or evaluation title equals, softens the function probabilities a user reads
(``persona_temperature``, applied by ``inference.decode``); labels do not change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from buying_groups.evaluate import calibration_error, evaluate_predictions
from buying_groups.models.inference import decode, predict_proba, softmax, tempered

MIN_LABELS = 300  # known (contact, product) roles in validation below this: no offsets
GRID = np.round(np.arange(-3.0, 3.0001, 0.1), 1)  # offsets tried per role (log scale)
MIN_CALIBRATION_TITLES = 500  # real titles below this: no persona temperature
CALIBRATION_TITLES = 3000  # persona_calibration's max_titles where the config gives none


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over the classes present in ``y`` (``evaluate.head_metrics``' definition)."""
    tp = np.bincount(y[y == pred], minlength=n_classes)
    true = np.bincount(y, minlength=n_classes)
    predicted = np.bincount(pred, minlength=n_classes)
    present = true > 0
    f1 = 2 * tp[present] / (true[present] + predicted[present])
    return float(f1.mean())


def fit_offsets(
    log_proba: np.ndarray, y: np.ndarray, reference: int, rounds: int = 2
) -> np.ndarray:
    """Per-class offsets added to ``log_proba`` (n, classes) that maximise macro-F1 on ``y``,
    by coordinate ascent over ``GRID`` (``reference``'s offset stays 0: only differences
    matter). Where a range of offsets ties for best, its middle is taken, so the offset sits
    inside the plateau rather than on its edge; a class keeps 0 unless it does better."""
    n_classes = log_proba.shape[1]
    offsets = np.zeros(n_classes)
    for _ in range(rounds):
        for c in range(n_classes):
            if c == reference:
                continue
            trial = np.repeat(offsets[None], len(GRID), axis=0)
            trial[:, c] = GRID
            scores = np.array([macro_f1(y, (log_proba + t).argmax(1), n_classes) for t in trial])
            best = np.flatnonzero(scores >= scores.max() - 1e-12)
            current = macro_f1(y, (log_proba + offsets).argmax(1), n_classes)
            if scores.max() > current + 1e-12:
                offsets[c] = GRID[best[len(best) // 2]]
    return offsets


def bagged_offsets(
    log_proba: np.ndarray, y: np.ndarray, reference: int, resamples: int = 20, seed: int = 0
) -> np.ndarray:
    """``fit_offsets`` averaged over bootstrap resamples of the contacts (rows of the
    (contacts, products) ``y``; -1 where unknown). One fit follows the few validation labels
    of a rare role (an offset's spread between resamples is about 1); the average moves a
    decision only where most resamples agree (on a model already calibrated, it stays near 0)."""
    rng = np.random.default_rng(seed)
    fits = []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        known = y[rows] >= 0
        fits.append(fit_offsets(log_proba[rows][known], y[rows][known], reference))
    return np.mean(fits, axis=0)


def choose_role_bias(model, tokenizer, validation: pd.DataFrame) -> dict[str, float]:  # noqa: ANN001
    """Fit and set ``model.config.role_bias`` on the known roles of ``validation``; returns
    validation role macro-F1 before and after (empty, and no offsets, with fewer than
    ``MIN_LABELS`` known roles). Call inside ``caching()`` to share the pass with later ones."""
    cfg = model.config
    cfg.role_bias = []
    index = {r: i for i, r in enumerate(cfg.roles)}
    columns = [f"role_{p}" for p in cfg.products]
    if not set(columns) <= set(validation.columns):
        return {}
    y = np.stack([validation[c].map(index).fillna(-1).astype(int).to_numpy() for c in columns], 1)
    if (y >= 0).sum() < MIN_LABELS:
        return {}
    proba = predict_proba(model, tokenizer, validation)["role"]  # (contacts, products, roles)
    log_proba = np.log(np.clip(proba, 1e-12, None))
    known = y >= 0
    reference = int(np.bincount(y[known], minlength=len(cfg.roles)).argmax())  # "none" mostly
    offsets = np.round(bagged_offsets(log_proba, y, reference), 2)
    before = macro_f1(y[known], log_proba[known].argmax(1), len(cfg.roles))
    after = macro_f1(y[known], (log_proba[known] + offsets).argmax(1), len(cfg.roles))
    if np.any(offsets) and after > before:  # an average of fits need not beat the head
        cfg.role_bias = [float(o) for o in offsets]
    else:
        after = before
    return {"role_macro_f1_before": before, "role_macro_f1_after": after}


def raw_role_metrics(model, tokenizer, frame: pd.DataFrame, products: list[str]) -> dict:  # noqa: ANN001
    """``frame``'s role accuracy and macro-F1 from the head's own argmax (offsets off), as
    ``<split>/role_*`` keys: the split the offsets were chosen on must not be scored with
    them, or its figures (and a sweep's objective) would be in-sample."""
    bias, model.config.role_bias = model.config.role_bias, []
    try:
        pred = decode(model.config, predict_proba(model, tokenizer, frame))
    finally:
        model.config.role_bias = bias
    metrics = evaluate_predictions(frame.reset_index(drop=True), pred, products)
    return {k: v for k, v in metrics.items() if "/role_" in k}


def fit_temperature(
    proba: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.25, 8.0)
) -> float:
    """The temperature ``t`` that minimises the log-loss of ``softmax(log(proba) / t)`` on the
    class indices ``y`` (> 1 softens over-confident probabilities, < 1 sharpens)."""
    from scipy.optimize import minimize_scalar

    log_proba = np.log(np.clip(proba, 1e-12, None))

    def loss(t: float) -> float:
        return log_loss(softmax(log_proba / t), y)

    return float(minimize_scalar(loss, bounds=bounds, method="bounded").x)


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-probability of the true class indices ``y``."""
    return float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean())


def choose_persona_temperature(model, tokenizer, titles: pd.DataFrame) -> dict[str, float]:  # noqa: ANN001
    """Fit and set ``model.config.persona_temperature`` (the function head) on ``titles``
    (model inputs with their true ``function``); returns the temperature and the titles'
    calibration error and log-loss before and after."""
    cfg = model.config
    cfg.persona_temperature = {}
    y = titles["function"].map({f: i for i, f in enumerate(cfg.functions)}).to_numpy()
    raw = predict_proba(model, tokenizer, titles)
    t = round(fit_temperature(raw["function"], y), 3)
    out = {"function_temperature": t}
    for when, temperature in (("before", {}), ("after", {"function": t})):
        cfg.persona_temperature = temperature
        p = tempered(cfg, raw)["function"]
        out[f"function_calibration_error_{when}"] = calibration_error(p.max(1), p.argmax(1) == y)
        out[f"function_log_loss_{when}"] = log_loss(p, y)
    return out
