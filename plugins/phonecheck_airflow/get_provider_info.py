"""Provider metadata: registers the ``nxcloud`` and ``accuauth`` connection types.

Airflow 3 only registers connection types (and their UI form fields) through the
``apache_airflow_provider`` entry point of an installed distribution; ``package-name`` must
equal the distribution name. Fields are declared with ``conn-fields`` (JSON schema per field,
stored as ``extra__<type>__<name>``); ``format: password`` marks a field secret.
"""

from __future__ import annotations

from typing import Any

NXCLOUD_CONN_FIELDS: dict[str, Any] = {
    "appkey": {
        "label": "App key",
        "description": "NXCLOUD application appkey sent with number-check submits.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "sign_algorithm": {
        "label": "Signing algorithm",
        "description": "md5 (vendor default) or sha256 (sent as the 'algorithm' header).",
        "schema": {"type": ["string", "null"], "enum": ["md5", "sha256", None], "default": "md5"},
    },
    "query_timezone": {
        "label": "Query API date timezone",
        "description": "Timezone of the query API 'date' (undocumented by the vendor). Default UTC.",
        "schema": {"type": ["string", "null"], "default": "UTC"},
    },
    "query_min_interval_s": {
        "label": "Query API min seconds between calls",
        "description": "Rate limit of the query API (newer vendor docs: one call every 3 s).",
        "schema": {"type": ["number", "null"], "default": 3},
    },
}

ACCUAUTH_CONN_FIELDS: dict[str, Any] = {
    "allowed_country_codes": {
        "label": "Allowed country codes",
        "description": "Calling codes this AccuAuth endpoint accepts, comma separated (Mexico: 52). "
        "Other numbers are rejected offline, never sent.",
        "schema": {"type": ["string", "null"], "default": "52"},
    },
    "timeout_s": {
        "label": "Read timeout (s)",
        "description": "Connect/read timeout of one call. A submit that times out is never resent.",
        "schema": {"type": ["number", "null"], "default": 30},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "telco-phonecheck",
        "name": "Telco phone check",
        "description": "NXCLOUD number check / voice / PNS and AccuAuth phone status hooks for the phone-verification pipelines.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "connection-type": "nxcloud",
                "hook-class-name": "phonecheck_airflow.hooks.nxcloud.NxCloudHook",
                "hook-name": "NXCLOUD (signed API)",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"host": "Base URL", "login": "Access key", "password": "Access secret"},
                    "placeholders": {
                        "host": "https://api2.nxcloud.com",
                        "login": "accessKey",
                        "password": "accessSecret (never sent, only used to sign)",
                    },
                },
                "conn-fields": NXCLOUD_CONN_FIELDS,
            },
            {
                "connection-type": "accuauth",
                "hook-class-name": "phonecheck_airflow.hooks.accuauth.AccuAuthHook",
                "hook-name": "AccuAuth",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "extra"],
                    "relabeling": {"host": "Base URL", "login": "API id", "password": "API secret"},
                    "placeholders": {
                        "host": "https://cloudapi.mexico.accuauth.com",
                        "login": "X-DF-API-ID",
                        "password": "X-DF-API-SECRET",
                    },
                },
                "conn-fields": ACCUAUTH_CONN_FIELDS,
            },
        ],
    }
