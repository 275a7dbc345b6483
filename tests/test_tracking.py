"""The MLflow edge: what loading a logged model checks about this environment."""

import platform
from importlib.metadata import version

import pytest

from buying_groups.tracking import requirement_mismatches


def _model_dir(path, requirements, python_version, part_requirements=None):
    path.mkdir()
    (path / "MLmodel").write_text(
        f"flavors:\n  python_function:\n    python_version: {python_version}\n"
    )
    (path / "requirements.txt").write_text("\n".join(requirements) + "\n")
    if part_requirements is not None:  # a logged model inside it (the buying-groups model's parts)
        (path / "artifacts" / "0").mkdir(parents=True)
        (path / "artifacts" / "0" / "requirements.txt").write_text("\n".join(part_requirements))
    return path


def test_an_environment_that_meets_the_pins_has_nothing_to_report(tmp_path):
    here = _model_dir(
        tmp_path / "m",
        [f"pandas=={version('pandas')}", "# a comment", "", f"numpy>={version('numpy')}"],
        platform.python_version(),
        part_requirements=[f"mlflow=={version('mlflow')}"],
    )
    assert requirement_mismatches(here) == []


def test_missing_packages_other_versions_and_python_are_named(tmp_path):
    here = _model_dir(
        tmp_path / "m",
        ["pandas==0.0.1", f"numpy=={version('numpy')}", "-r other.txt"],
        "2.7.18",
        part_requirements=["surely-not-an-installed-package==1.0"],
    )
    problems = requirement_mismatches(here)
    assert problems == sorted(
        [
            f"pandas (installed: {version('pandas')}, required: pandas==0.0.1)",
            "surely-not-an-installed-package (installed: none, "
            "required: surely-not-an-installed-package==1.0)",
            f"Python (installed: {platform.python_version()}, logged with: 2.7.18)",
        ]
    )


@pytest.mark.slow  # logs three models to a registry
def test_the_registry_alias_moves_only_to_a_model_at_least_as_good(tmp_path):
    """``register_if_better``: same dataset, worse metric -> registered, alias kept; better or
    other data -> the alias moves."""
    import mlflow

    from buying_groups import registry

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):  # noqa: ANN001, ANN201, ARG002
            return model_input

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("alias-test")

    def logged(score: float, digest: str) -> tuple[str, str]:
        with mlflow.start_run() as run:
            mlflow.set_tag("dataset.digest", digest)
            mlflow.log_metric("backtest/pr_auc", score)
            info = mlflow.pyfunc.log_model(name="m", python_model=Constant())
        return info.model_uri, run.info.run_id

    first = logged(0.5, "d1")
    assert registry.register_if_better(first[0], "m", "champion", first[1], "backtest/pr_auc") == (
        "1",
        True,
    )
    worse = logged(0.4, "d1")
    assert registry.register_if_better(worse[0], "m", "champion", worse[1], "backtest/pr_auc") == (
        "2",
        False,
    )
    assert registry.alias_version("m", "champion") == "1"
    other_data = logged(0.1, "d2")
    moved = registry.register_if_better(
        other_data[0], "m", "champion", other_data[1], "backtest/pr_auc"
    )
    assert moved == ("3", True) and registry.alias_version("m", "champion") == "3"
