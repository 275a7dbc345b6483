import pandas as pd
import pytest

from buying_groups.baselines.rules import (
    RulesBaseline,
    advocacy_from_text,
    parse_function,
    parse_seniority,
)
from buying_groups.data.examples import labelled_examples
from buying_groups.evaluate import evaluate_predictions, head_metrics


@pytest.mark.parametrize(
    ("title", "function", "seniority"),
    [
        ("VP Procurement", "procurement", "vp"),
        ("Vice President, Procurement", "procurement", "vp"),
        ("Senior Vice President Sales", "sales", "vp"),
        ("Head of Procurement", "procurement", "director"),
        ("Leiter Einkauf", "procurement", "director"),
        ("Directeur des achats", "procurement", "director"),
        ("Руководитель отдела закупок", "procurement", "director"),
        ("Jefe de Seguridad TI", "security", "manager"),
        ("Sr. Mgr, Demand Gen", "marketing", "manager"),
        ("Owner / CEO", "executive", "executive"),
        ("Chief Information Security Officer", "security", "executive"),
        ("", "other", "professional"),
    ],
)
def test_keyword_parsing(title, function, seniority):
    assert parse_function(title) == function
    assert parse_seniority(title) == seniority


def test_advocacy_from_text():
    text = pd.Series(
        [
            "requested demo (data_platform); started trial (data_platform); "
            "requested pricing (security_platform)",
            "",
        ]
    )
    adv = advocacy_from_text(text, ("data_platform", "security_platform"))
    assert adv["data_platform"].tolist() == [2, 0]
    assert adv["security_platform"].tolist() == [1, 0]


def test_head_metrics():
    m = head_metrics(["a", "a", "b"], ["a", "b", "b"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx(2 / 3)


def test_baseline_is_decent_in_distribution_and_worse_out_of_it(tiny_dataset, catalog):
    ex = labelled_examples(
        tiny_dataset.tables, tiny_dataset.labels, catalog, as_of=tiny_dataset.config.end
    )
    pred = RulesBaseline(catalog).predict(ex)
    m = evaluate_predictions(ex, pred, catalog.names, groups=["test", "test_ood"])
    assert m["test/role_macro_f1"] > 0.6 and m["test/function_accuracy"] > 0.6
    assert m["test_ood/function_accuracy"] < m["test/function_accuracy"] - 0.1
    assert m["test_ood/role_macro_f1"] < m["test/role_macro_f1"]
