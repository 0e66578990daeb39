"""Airflow-facing pieces of the platform, written like an apache provider.

Hooks sign and send vendor calls, triggers only wait, sensors poke once then defer,
operators load and validate. Plain logic lives in :mod:`phonecheck` (``include/``).
"""
