"""Plain-Python core of the phone-verification platform.

Nothing under ``phonecheck`` imports Airflow: vendor models and parsers, request signing,
the warehouse runtime and migrations, the loader, the quality suites, the receiver app and
the vendor sandbox. The Airflow-facing pieces live in ``phonecheck_airflow`` (``plugins/``).
"""
