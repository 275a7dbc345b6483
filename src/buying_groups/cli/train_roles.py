"""bg-train-roles: fine-tune the role model, evaluate it and the baselines, log to MLflow.

config -> data -> model -> train -> evaluate -> log. Three runs land in one MLflow
experiment with the same metric names, so the UI compares them side by side: the
transformer, the rules baseline and TF-IDF + logistic regression.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from buying_groups import tracking
from buying_groups.baselines.rules import RulesBaseline
from buying_groups.baselines.tfidf import TfidfBaseline
from buying_groups.cli.common import (
    console,
    ensure_dataset,
    exit_on_data_error,
    load_labelled_examples,
    print_frame,
)
from buying_groups.config import catalog_from, hydra_entry
from buying_groups.data.dataset import dataset_manifest
from buying_groups.data.examples import role_model_splits
from buying_groups.data.real_titles import (
    calibration_titles,
    knowledge_examples,
    real_title_eval,
)
from buying_groups.data.validate import DataValidationError
from buying_groups.models.calibration import (
    CALIBRATION_TITLES,
    MIN_CALIBRATION_TITLES,
    MIN_LABELS,
    choose_persona_temperature,
    choose_role_bias,
    raw_role_metrics,
)
from buying_groups.models.distill import INPUT_COLUMNS, distillation, transfer_inputs
from buying_groups.models.evaluation import (
    VariantRuns,
    evaluate_predictor,
    measure_for_choice,
    pick_variant,
    real_title_gaps,
    real_title_table,
)
from buying_groups.models.inference import caching, decode, predict_proba
from buying_groups.models.invariance import invariance_table, title_contexts
from buying_groups.models.train import train_role_model
from buying_groups.serving.role_pyfunc import role_outputs
from buying_groups.taxonomy import Catalog


def load_examples(cfg: DictConfig, catalog: Catalog) -> tuple[pd.DataFrame, dict]:
    """Labelled contacts with their split and the title lists' contacts; role labels
    thinned to ``role_label_fraction``."""
    examples = load_labelled_examples(cfg, catalog, "training")
    knowledge = knowledge_examples(
        cfg.title_lists,
        catalog,
        cfg.seed,
        repeat=cfg.get("title_list_repeat"),
        roles=cfg.get("title_list_roles", True),
        context_noise=cfg.get("title_list_context", 0.0),
        typo_noise=cfg.get("title_list_typo", 0.0),
    )
    examples = pd.concat([examples, knowledge], ignore_index=True)
    if cfg.role_label_fraction < 1.0:
        rng = np.random.default_rng(cfg.seed)
        train = (examples["split"] == "train").to_numpy()
        for p in catalog.names:
            drop = train & (rng.random(len(examples)) >= cfg.role_label_fraction)
            examples.loc[drop, f"role_{p}"] = None
    return examples, dataset_manifest(Path(cfg.data_dir))


def sweep_context(experiment_id: str) -> tuple[str | None, int | None]:
    """(parent run id, trial number) under ``-m`` (multirun); (None, None) otherwise."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None, None
    parent = tracking.sweep_parent(hc.sweep.dir, experiment_id, f"sweep {hc.job.name}")
    return parent, int(hc.job.num)


def run(cfg: DictConfig) -> float:
    """The Hydra entry point: the optimised metric (for sweeps)."""
    return train_and_log(cfg)["objective"]


def train_and_log(cfg: DictConfig) -> dict:
    """Train, evaluate and log; every model's metrics by name, and the ``objective``."""
    catalog = catalog_from(cfg)
    try:  # a misspelt context stops the run before any data is read
        contexts = title_contexts(cfg.get("real_title_contexts"))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if cfg.generate_if_missing:
        ensure_dataset(cfg)
    examples, manifest = load_examples(cfg, catalog)
    t = cfg.trainer
    train, validation, evaluation = role_model_splits(
        examples, t.max_train_samples, t.max_eval_samples, cfg.seed
    )
    real = real_title_eval() if cfg.real_titles else None
    console.print(
        f"data: {manifest['name']}  train {len(train):,} (title lists "
        f"{int((train['title_kind'] == 'knowledge').sum()):,})  validation {len(validation):,}  "
        f"test+ood {len(evaluation) - len(validation):,}"
        + (f"  real titles {len(real):,}" if real is not None else "")
    )
    experiment_id = tracking.setup(cfg.tracking)
    parent, trial = sweep_context(experiment_id)
    context = {"cfg": cfg, "dataset_name": manifest["name"], "dataset_digest": manifest["digest"]}
    results, real_pred = {}, {}
    for name in cfg.baselines:  # first: the transformer's run then holds the comparison
        with tracking.run(name, {"bg.kind": "role_model", "bg.model": name}, parent_run_id=parent):
            tracking.log_context(**context)
            baseline = RulesBaseline(catalog) if name == "rules" else TfidfBaseline(catalog)
            if name == "tfidf_logreg":
                baseline.fit(train)
            evaluated = evaluate_predictor(
                baseline.predict, evaluation, catalog, real=real, contexts=contexts
            )
            results[name], real_pred[name] = log_evaluation(evaluated)
    tags = {"bg.kind": "role_model", "bg.model": "transformer"}
    with tracking.run("transformer", tags, parent_run_id=parent) as active:
        tracking.log_context(**context, dataset_frame=train[INPUT_COLUMNS])
        data = (train, validation, evaluation, real)
        mine, real_pred["transformer"] = fit_and_log(cfg, catalog, manifest, *data, contexts)
        results = {"transformer": mine, **results}
        gaps = real_title_gaps(real, real_pred) if real is not None else None
        if gaps is not None:
            tracking.log_table(gaps, "reports/real_title_gaps.json")
    report(results, real, gaps)
    console.print(
        f"trained in {results['transformer']['train_seconds']:.0f}s; MLflow run "
        f"{active.info.run_id} in {tracking.default_tracking_hint()}"
    )
    objective = results["transformer"][cfg.optimized_metric]
    if parent is not None:
        metric = cfg.optimized_metric.replace("/", "_")
        tracking.update_sweep_parent(parent, metric, objective, trial)
    OmegaConf.save(cfg, Path(cfg.output_dir) / "train_roles_config.yaml", resolve=True)
    return {**results, "objective": float(objective)}


def log_evaluation(
    evaluated: tuple[dict, dict, dict],
) -> tuple[dict[str, float], pd.DataFrame | None]:
    """Log ``evaluate_predictor``'s metrics, reports and figures in the active run; the
    metrics and the real titles' predictions (``None`` without real titles)."""
    metrics, reports, figures = evaluated
    real_pred = reports.pop("real/predictions", None)
    tracking.log_metrics(metrics)
    tracking.log_json(reports, "reports/classification_reports.json")
    tracking.log_figures(figures)
    if real_pred is not None:
        tracking.log_table(real_pred, "reports/real_title_predictions.json")
    return metrics, real_pred


def fit_and_log(
    cfg: DictConfig,
    catalog: Catalog,
    manifest: dict,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    evaluation: pd.DataFrame,
    real: pd.DataFrame | None,
    contexts: list[str],
) -> tuple[dict[str, float], pd.DataFrame | None]:
    """Fine-tune (or distil) the transformer, evaluate it (on the real titles with
    ``contexts`` too), choose its inference variant, save it and log it as a pyfunc, in the
    active run; its metrics and its real-title predictions."""
    start, soft, fit_rows = None, None, train
    if cfg.distill.teacher:
        try:
            transfer = transfer_inputs(cfg, catalog)
        except DataValidationError as exc:
            exit_on_data_error(exc)
        start, soft, fit_rows = distillation(cfg.distill, train, transfer)
        tracking.set_tags({"bg.distilled_from": start[0].config.distilled_from})
    started = time.perf_counter()
    model, tokenizer, fit_metrics = train_role_model(
        fit_rows, validation, catalog, cfg.model, cfg.trainer,
        Path(cfg.output_dir) / "checkpoints", cfg.seed, ["mlflow"], start=start, soft=soft,
    )  # fmt: skip
    train_seconds = time.perf_counter() - started
    report_title_expert(model, fit_metrics)

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        return decode(model.config, predict_proba(model, tokenizer, frame))

    # The variants' timed fp32 pass over validation serves the offsets and the evaluation
    # too: one cache across all three, keyed by this unsaved model and the variant running
    # it (no mixing). The variants are judged after the offsets are chosen, on the roles
    # they will serve.
    model.weights_digest = f"unsaved-{uuid.uuid4().hex}"
    with caching():
        with console.status("measuring inference variants"):
            runs = measure_for_choice(cfg.inference, model, tokenizer, validation)
        calibration = calibrate_roles(cfg, model, tokenizer, validation)
        calibration |= calibrate_persona(cfg, model, tokenizer, (fit_rows, validation))
        set_variant(cfg, model, runs, catalog)
        evaluated = evaluate_predictor(predict, evaluation, catalog, real=real, contexts=contexts)
        if model.config.role_bias:  # validation chose the offsets: its roles scored without
            evaluated[0].update(raw_role_metrics(model, tokenizer, validation, catalog.names))
        metrics, real_pred = log_evaluation(evaluated)
    del model.weights_digest
    metrics |= calibration | {
        "train_seconds": train_seconds,
        "train_examples_per_second": len(fit_rows) * float(cfg.trainer.epochs) / train_seconds,
    }
    tracking.log_metrics(metrics)
    save_and_log_model(cfg, model, tokenizer, evaluation[INPUT_COLUMNS], manifest, catalog)
    return metrics, real_pred


def save_and_log_model(cfg: DictConfig, model, tokenizer, inputs, manifest, catalog) -> None:  # noqa: ANN001
    """Save the role model under the run's output directory and, unless
    ``tracking.log_model=false``, log it as a pyfunc with an input example."""
    model_dir = Path(cfg.output_dir) / "role_model"
    model.save(model_dir, tokenizer)
    if cfg.tracking.log_model:
        example = inputs.head(5).reset_index(drop=True)
        info = tracking.log_role_pyfunc(
            model_dir,
            example,
            role_outputs(model, tokenizer, example),
            metadata={
                "products": list(catalog.names),
                "dataset": manifest["name"],
                "dataset_digest": manifest["digest"],
                "variant": model.config.inference_variant,
            },
        )
        console.print(f"model: {info.model_uri}")


def report_title_expert(model, fit_metrics: dict) -> None:  # noqa: ANN001
    """How the title expert's pooling weight was chosen (printed and logged), if it has one."""
    if "title_expert_choice" in fit_metrics:
        choice = pd.DataFrame.from_dict(fit_metrics["title_expert_choice"], orient="index")
        w = model.config.title_expert_weights
        print_frame(choice, f"title expert on validation titles, by pooling weight (chosen {w})")
        tracking.log_table(choice, "reports/title_expert.json")
    by_language = model.config.title_expert_language_weights
    if by_language:
        table = pd.DataFrame(by_language).rename_axis("language")
        print_frame(table, "title expert weight per language (validation log-loss, prior 100)")
        tracking.log_table(table, "reports/title_expert_languages.json")


def calibrate_roles(cfg: DictConfig, model, tokenizer, validation) -> dict[str, float]:  # noqa: ANN001
    """Role decision offsets chosen on validation (``model.role_bias``); their metrics."""
    model.config.role_bias = []
    if not cfg.model.get("role_bias", True):
        return {}
    with console.status("choosing role decision offsets on validation"):
        scores = choose_role_bias(model, tokenizer, validation)
    if not scores:
        console.print(f"role decision offsets: none (under {MIN_LABELS} known validation roles)")
        return {}
    bias = dict(zip(model.config.roles, model.config.role_bias, strict=False))
    console.print(
        f"role decision offsets {({r: b for r, b in bias.items() if b}) or 'none'}: validation "
        f"role macro-F1 {scores['role_macro_f1_before']:.3f} -> "
        f"{scores['role_macro_f1_after']:.3f} (in-sample; validation is reported without them)"
    )
    return {f"calibration/{k}": v for k, v in scores.items()}


def calibrate_persona(cfg: DictConfig, model, tokenizer, seen) -> dict[str, float]:  # noqa: ANN001
    """The function head's reported probabilities softened to match how often it is right on
    real names it never saw (``persona_calibration``; ``model.persona_temperature``)."""
    model.config.persona_temperature = {}
    spec = cfg.get("persona_calibration") or {}
    if not spec.get("list"):
        return {}
    exclude = pd.concat([frame["job_title"] for frame in seen])
    cap = int(spec.get("max_titles") or CALIBRATION_TITLES)
    titles = calibration_titles(spec["list"], exclude, cap, cfg.seed)
    if len(titles) < MIN_CALIBRATION_TITLES:
        console.print(
            f"persona calibration: none ({len(titles)} '{spec['list']}' titles not trained on, "
            f"max_titles {cap}; {MIN_CALIBRATION_TITLES} needed: pick a list training does not "
            "read)"
        )
        return {}
    with console.status(f"fitting the function probabilities on {len(titles):,} real titles"):
        scores = choose_persona_temperature(model, tokenizer, titles)
    console.print(
        f"function probabilities: temperature {scores['function_temperature']:.2f}, fitted on "
        f"{len(titles):,} '{spec['list']}' titles never trained on; their calibration error "
        f"{scores['function_calibration_error_before']:.3f} -> "
        f"{scores['function_calibration_error_after']:.3f}"
    )
    return {f"calibration/{k}": v for k, v in scores.items()}


def set_variant(cfg: DictConfig, model, runs: VariantRuns | None, catalog: Catalog) -> None:  # noqa: ANN001
    """Record how loaders will run the model: the configured inference variant, or the
    fastest measured one that keeps accuracy on validation (``inference.variant=auto``)."""
    variant, variants = pick_variant(cfg.inference, model.config, runs, catalog)
    model.config.inference_variant = variant
    if len(variants):
        floor = cfg.inference.get("min_class_labels") or 0
        title = f"inference variants on validation contacts, classes with {floor}+ labels"
        print_frame(variants, f"{title} (chosen: {variant})")
        tracking.log_variants(variants)
    tracking.set_tags({"bg.inference_variant": variant})


def report(results: dict[str, dict], real: pd.DataFrame | None, gaps: pd.DataFrame | None) -> None:
    """Every model's metrics per split, on the real titles and with their contexts, and the
    transformer's real-title gaps to each baseline with their bootstrap intervals."""
    rows = {}
    for name, m in results.items():
        for split in ("validation", "test", "test_ood", "crm_test"):
            row = {k.split("/", 1)[1]: v for k, v in m.items() if k.startswith(f"{split}/")}
            if row:
                rows[f"{name} / {split}"] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model / split"
    print_frame(table, "role model vs baselines")
    if real is not None:
        print_frame(
            pd.concat({name: real_title_table(m) for name, m in results.items()}),
            f"real job titles ({len(real):,}, never trained on; docs/data.md)",
        )
        same = {name: invariance_table(m) for name, m in results.items()}
        if any(len(t) for t in same.values()):
            print_frame(
                pd.concat(same).rename_axis(["model", "context"]),
                "real titles with words that say nothing about the person: share whose "
                "persona stays the bare title's, accuracy (scripts/title_invariance.py)",
            )
    if gaps is not None and len(gaps):
        cell = gaps.apply(lambda r: f"{r.gap:+.3f} ({r.low:+.3f}..{r.high:+.3f})", axis=1)
        wide = gaps.assign(cell=cell).pivot(index="language", columns=["other", "head"])["cell"]
        wide.columns = [f"{head} vs {other}" for other, head in wide.columns]
        print_frame(
            wide.loc[["all", *sorted(i for i in wide.index if i != "all")]],
            "real titles: transformer macro-F1 minus each baseline's (90% bootstrap interval; "
            "one holding 0 is within noise)",
        )


main = hydra_entry("train_roles", run)
