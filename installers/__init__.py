"""Installers: put certificates into servers (plan only; the core applies)."""
