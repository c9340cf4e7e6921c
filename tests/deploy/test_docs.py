import re

from tests.deploy.manifests import DEPLOY, PROCESS_ENV, settings_env_names

OPERATIONS = (DEPLOY.parent / "docs" / "operations.md").read_text()


def documented_variables() -> set[str]:
    """Names in the first column of the configuration table."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", OPERATIONS, flags=re.MULTILINE))


def test_every_setting_read_from_the_environment_is_documented():
    assert settings_env_names() | PROCESS_ENV <= documented_variables(), (
        settings_env_names() | PROCESS_ENV
    ) - documented_variables()


def test_no_documented_variable_is_unknown():
    assert documented_variables() <= settings_env_names() | PROCESS_ENV


def test_the_registration_walkthrough_names_the_real_paths():
    for needle in ("deploy/target-cluster", "print-registration.sh", "/api/v1/clusters/", "/check/"):
        assert needle in OPERATIONS
    assert (DEPLOY / "target-cluster" / "print-registration.sh").is_file()
