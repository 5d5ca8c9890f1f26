"""NCSN Studio: the PySide6 desktop app around ncsn_core."""
