"""bg-pipeline: the main job, end to end on the embedded defaults.

generate (unless present) -> validate -> rules baseline -> train + evaluate the role model
against the baselines -> train the qualifier on groups from that model and compare it with
MQL and MQA -> renewal risk at customers (when the export has subscriptions) -> promote the
best model (registry alias ``champion``) -> with ``student=true``, distil a fast student from
the role model, train a qualifier on its groups and promote it only if it is better on
held-out data -> batch-score the data with the champion -> a short report of the numbers and
where everything is.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

from buying_groups import registry, tracking
from buying_groups.cli import promote, score, train_qualifier, train_retention, train_roles
from buying_groups.cli.baseline import rules_report
from buying_groups.cli.common import console, ensure_dataset, print_frame, print_mapping
from buying_groups.config import hydra_entry
from buying_groups.data.dataset import MANIFEST, dataset_manifest, has_tables
from buying_groups.data.io import find_table
from buying_groups.evaluate import metrics_table
from buying_groups.models.inference import caching
from buying_groups.qualify.retention import TooFewRenewals

STUDENT_STEPS = (
    "fast student (distilled from the role model; progress below)",
    "qualifier on the student's groups",
    "promote the student if it is better",
)


def run(cfg: DictConfig) -> dict:
    # One role-prediction cache for the whole job: the qualifier, promotion and scoring run
    # the same role model over the same titles; each is encoded once.
    with caching():
        return _run(cfg)


class Steps:
    """The job's numbered step headers, and the seconds each step took (for the report)."""

    def __init__(self, names: list[str]) -> None:
        self.names, self.seconds = names, {}
        self._current, self._since = "", 0.0

    def start(self, name: str) -> None:
        self.stop()
        self._current, self._since = name.split(" (")[0], time.perf_counter()
        console.rule(f"[bold]{self.names.index(name) + 1}/{len(self.names)} {name}")

    def stop(self) -> None:
        if self._current:
            self.seconds[self._current] = time.perf_counter() - self._since
            self._current = ""


def _run(cfg: DictConfig) -> dict:
    names = ["data", "rules baseline"]
    names += ["role model (fine-tuning; progress below)"] if cfg.train_roles else []
    names += ["qualified buying groups vs MQL and MQA"] if cfg.train_qualifier else []
    # renewal risk needs the export's subscriptions (the generator writes them)
    data_dir = Path(cfg.data_dir)
    generated = cfg.regenerate or not has_tables(data_dir)
    retention = cfg.retention and (generated or find_table(data_dir, "subscriptions") is not None)
    names += ["renewal risk at customers"] if retention else []
    names += ["promote the best model"] if cfg.promote else []
    names += list(STUDENT_STEPS) if cfg.student else []
    names += ["batch scoring with the champion"] if cfg.score else []
    steps = Steps(names)
    steps.start(names[0])
    data_dir = ensure_dataset(cfg, regenerate=cfg.regenerate)
    manifest = dataset_manifest(data_dir)
    print_mapping(
        {k: v for k, v in manifest["summary"].items() if not k.startswith("role_")},
        f"dataset '{manifest['name']}' in {data_dir}",
    )
    steps.start(names[1])
    metrics = rules_report(cfg)
    table = metrics_table({k: v for k, v in metrics.items() if not k.startswith("lang_")})
    table.index.name = "split"
    print_frame(table, "rules baseline")
    result: dict = {"manifest": manifest, "rules": metrics}
    if cfg.train_roles:
        steps.start("role model (fine-tuning; progress below)")
        result["roles"] = train_roles.train_and_log(cfg)
        result["role_model_objective"] = result["roles"]["objective"]
    if cfg.train_qualifier:
        steps.start("qualified buying groups vs MQL and MQA")
        result["qualifier"] = train_qualifier.train_and_log(sub_config(cfg, "train_qualifier"))
    if retention:
        steps.start("renewal risk at customers")
        try:
            result["retention"] = train_retention.train_and_log(sub_config(cfg, "train_retention"))
        except TooFewRenewals as exc:  # a small export: the rest of the job still stands
            result["retention_skipped"] = str(exc)
            console.print(f"renewal risk skipped: {exc}")
    if cfg.promote:
        steps.start("promote the best model")
        result["promote"] = promote.run(sub_config(cfg, "promote"))
    if cfg.student:
        result |= student(cfg, steps)
    if cfg.score:
        steps.start("batch scoring with the champion")
        result["score"] = score.run(
            sub_config(cfg, "score", [f"output_dir={cfg.scores_dir}"], data_name=False)
        )
    steps.stop()
    result["seconds"] = steps.seconds
    report(cfg, result)
    return result


def student(cfg: DictConfig, steps: Steps) -> dict:
    """A student of this run's role model (or of the champion's, or of its teacher when the
    champion is itself a student; experiment=distill: 3 layers, ~6.5x faster), its
    qualifier, and its promotion: it replaces the champion only if bg-promote finds its
    buying groups better on held-out data, or as good and cheaper; else it stays registered."""
    teacher = (
        Path(cfg.output_dir) / "role_model"
        if cfg.train_roles
        else "models:/buying-group-roles@champion"
    )
    steps.start(STUDENT_STEPS[0])
    extra = [f"distill.teacher={teacher}", *cfg.student_overrides]
    if cfg.student_transfer:
        extra.append(f"distill.transfer_data={transfer_dataset(cfg)}")
    sub = student_config(cfg, extra)
    sub.output_dir = str(Path(cfg.output_dir) / "student")
    result = {"student_objective": train_roles.run(sub)}
    steps.start(STUDENT_STEPS[1])
    result["student_qualifier"] = train_qualifier.train_and_log(sub_config(cfg, "train_qualifier"))
    # This qualifier run, not the best one overall (the teacher's may rank higher on
    # validation): the student is the candidate that faces the champion.
    student_run = registry.last_run_id()
    steps.start(STUDENT_STEPS[2])
    result["student_promote"] = promote.run(sub_config(cfg, "promote", [f"run_id={student_run}"]))
    return result


def customer_lines(cfg: DictConfig, result: dict) -> list[str]:
    """The report's qualifier, expansion, renewal-risk and NRR lines."""
    lines = []
    if "qualifier" in result:
        m = result["qualifier"]
        lines.append(
            f"qualifier, test period at equal volume ({int(m['test/qbg_flagged'])} groups): "
            f"precision QBG {m['test/qbg_precision']:.3f} vs MQL {m['test/mql_precision']:.3f} "
            f"vs MQA {m['test/mqa_precision']:.3f}; PR-AUC {m['test/qbg_pr_auc']:.3f} vs "
            f"{m['test/mql_pr_auc']:.3f} vs {m['test/mqa_pr_auc']:.3f}"
        )
        if "test/expansion/qbg_precision" in m:
            lines.append(
                f"  expansion (customers' other products, {int(m['test/expansion/qbg_flagged'])} "
                f"groups): precision QBG {m['test/expansion/qbg_precision']:.3f} vs MQL "
                f"{m['test/expansion/mql_precision']:.3f} vs MQA "
                f"{m['test/expansion/mqa_precision']:.3f}; opportunities expected "
                f"{m.get('test/expansion/opportunities_expected', float('nan')):.1f}, came "
                f"{m.get('test/expansion/opportunities_actual', float('nan')):.0f}"
            )
    if "retention" in result:
        m = result["retention"]
        lines.append(
            f"renewal risk, backtest ({int(m['backtest/renewals'])} renewals, "
            f"{int(m['backtest/at_risk'])} at risk): precision in each month's top "
            f"{cfg.retention_capacity:.0%} {m['backtest/renewal_risk_precision']:.3f} vs recency "
            f"{m['backtest/recency_precision']:.3f} vs engagement "
            f"{m['backtest/engagement_precision']:.3f}; PR-AUC "
            f"{m['backtest/renewal_risk_pr_auc']:.3f} vs {m['backtest/recency_pr_auc']:.3f} vs "
            f"{m['backtest/engagement_pr_auc']:.3f}"
        )
        if m.get("backtest/up_for_renewal"):
            lines.append(
                f"  NRR view: of {m['backtest/up_for_renewal']:,.0f} up for renewal, "
                f"{m['backtest/revenue_at_risk']:,.0f} predicted at risk a month before, "
                f"{m['backtest/revenue_lost']:,.0f} lost, {m['backtest/revenue_gained']:,.0f} "
                "gained at renewal"
            )
    return lines


def report(cfg: DictConfig, result: dict) -> None:
    """What was measured, and where everything is."""
    lines = []
    if "role_model_objective" in result:
        lines.append(f"role model: validation role macro-F1 {result['role_model_objective']:.3f}")
        generated = (Path(cfg.data_dir) / MANIFEST).exists()  # else a user's export
        lines += persona_lines(result.get("roles", {}), "synthetic test" if generated else "test")
    lines += customer_lines(cfg, result)
    if "retention_skipped" in result:
        lines.append(f"renewal risk: skipped ({result['retention_skipped']})")
    if "student_objective" in result:
        lines.append(f"fast student: validation role macro-F1 {result['student_objective']:.3f}")
    for key in ("promote", "student_promote"):
        if key in result:
            p = result[key]
            lines.append(
                f"registry: buying-groups v{p['version']} "
                + ("is @champion" if p["promoted"] else "registered; @champion unchanged")
            )
    if "score" in result:
        s = result["score"]
        lines.append(
            f"scored: {s['contacts_scored']:,} contacts, {s['groups_scored']:,} groups "
            f"({s['qualified_groups']} qualified) in {cfg.scores_dir}/"
        )
        if isinstance(s.get("segments"), dict):
            lines.append(
                "  by segment: " + ", ".join(f"{k} {v:,}" for k, v in s["segments"].items())
                + (f"; {s['renewals_scored']:,} running renewals scored for risk"
                   if s.get("renewals_scored") is not None else "")
            )  # fmt: skip
    if "seconds" in result:
        t = result["seconds"]
        lines.append(
            f"took {sum(t.values()) / 60:.1f} min: "
            + ", ".join(f"{k} {v:.0f}s" for k, v in t.items())
        )
    lines += [
        f"MLflow: {tracking.default_tracking_hint()}",
        "serve the champion: bg-serve   (then POST http://127.0.0.1:5001/invocations; "
        "README: REST)",
        "your own export: bg-validate data_dir=<dir>, then bg-pipeline data_dir=<dir> "
        "labels=crm (README: Your own data)",
    ]
    console.rule("[bold green]done")
    for line in lines:
        console.print(f"  {line}")


def persona_lines(roles: dict, test: str = "synthetic test") -> list[str]:
    """Persona macro-F1 of the role model and the baselines on the test split (``test``: what
    to call it) and on the bundled real job titles, side by side, and their role macro-F1
    on the real titles."""
    lines = []
    for name, title in (("test", test), ("real", "real job titles")):
        cells = []
        for model in ("transformer", "rules", "tfidf_logreg"):
            m = roles.get(model, {})
            f, s = m.get(f"{name}/function_macro_f1"), m.get(f"{name}/seniority_macro_f1")
            if f is not None and s is not None:
                cells.append(f"{model} {f:.3f} / {s:.3f}")
        if cells:
            lines.append(f"persona macro-F1 (function / seniority), {title}: " + ", ".join(cells))
    cells = [
        f"{model} {roles[model]['real/role_macro_f1']:.3f}"
        for model in ("transformer", "rules", "tfidf_logreg")
        if "real/role_macro_f1" in roles.get(model, {})
    ]
    if cells:  # the roles the rules give each title's labelled persona, with no activity
        lines.append("role macro-F1, real job titles (their persona's roles): " + ", ".join(cells))
    return lines


# What the teacher learned from; the student learns from the same (the pipeline's values,
# command-line overrides included), unless student_overrides name them.
TEACHER_DATA = (
    "role_label_fraction",
    "title_lists",
    "title_list_roles",
    "title_list_repeat",
    "title_list_context",
    "title_list_typo",
    "real_title_contexts",
)


def student_config(cfg: DictConfig, extra: list[str]) -> DictConfig:
    """bg-train-roles' config for the student: ``extra`` (the teacher, ``student_overrides``)
    on the pipeline's data, with the teacher's training rows (``TEACHER_DATA``)."""
    sub = sub_config(cfg, "train_roles", extra)
    # Hydra's prefixes (+key=, ++key=, ~key) still name the key the student sets itself.
    named = {o.lstrip("+~").split("=", 1)[0] for o in cfg.student_overrides}
    for key in TEACHER_DATA:
        if key not in named:
            sub[key] = cfg[key]
    return sub


def transfer_dataset(cfg: DictConfig) -> Path:
    """Unlabelled contacts for the student (a real CRM's unlabelled contacts play this part):
    a second export of the same generator with the next seed and no OOD-vocabulary accounts,
    so the OOD test stays unseen, generated once beside the data (``<data>_transfer``)."""
    name = f"{cfg.data.name}_transfer"
    data = {**cfg.data, "name": name, "seed": int(cfg.data.seed) + 1, "p_ood_account": 0.0}
    directory = str(Path(cfg.data_dir).parent / name)
    gen = {"data": data, "catalog": cfg.catalog, "data_dir": directory}
    return ensure_dataset(DictConfig(gen))


def sub_config(
    cfg: DictConfig, name: str, extra: list[str] | None = None, data_name: bool = True
) -> DictConfig:
    """Another command's own config (``configs/<name>.yaml``) on the pipeline's data and
    MLflow store."""
    from hydra import compose

    overrides = [f"data_dir={cfg.data_dir}", *(extra or [])]
    if data_name:
        overrides += ["generate_if_missing=false", f"seed={cfg.seed}"]
    if name == "train_qualifier":
        overrides += list(cfg.qualifier_overrides)
    if name == "train_retention":
        overrides += list(cfg.retention_overrides)
    if cfg.tracking.uri:
        overrides.append(f"tracking.uri={cfg.tracking.uri}")
    sub = compose(config_name=name, overrides=overrides)
    if data_name and "data" in sub:  # the pipeline's data and labels, overrides included
        sub.data = cfg.data
    if "labels" in sub:
        sub.labels = cfg.labels
    if "output_dir" in sub and name != "score":
        sub.output_dir = str(cfg.output_dir)
    return sub


main = hydra_entry("pipeline", run)
