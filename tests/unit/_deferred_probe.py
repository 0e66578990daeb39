"""A module for tests/unit/test_quality_gx_imports.py to import late."""

VALUE = 42
