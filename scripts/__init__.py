"""Build and check helpers run by the Makefile (importable so the tests share their finders)."""
