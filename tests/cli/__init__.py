"""Tests of the commands, one module per command module. A package, so that a module here may
share its name with the test of the library module the command wraps (tests/test_extract.py)."""
