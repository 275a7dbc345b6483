"""The MLflow edge: what loading a logged model checks about this environment."""

import platform
from importlib.metadata import version

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
