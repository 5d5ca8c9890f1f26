"""NCSN Studio: the PySide6 desktop app around ncsn_core.

PySide6 6.12 on Python 3.11 drops a reference to True on every Python-side emit() and the interpreter
soon aborts (bool_dealloc); pyproject.toml therefore pins PySide6-Essentials below 6.12, and
tests/studio/test_controller_worker.py checks that the installed version does not leak.
"""
