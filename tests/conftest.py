"""Test-wide fixtures. Tests run against real Postgres and Redis (see Makefile `test`)."""

pytest_plugins = ["kubesim.testing", "tests.e2e", "tests.idp"]
