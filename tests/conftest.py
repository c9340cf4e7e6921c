"""Test-wide settings: real Postgres and Redis (see Makefile `test`)."""
