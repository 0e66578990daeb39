"""Personal data handling: masking for logs, keyed pseudonyms, erasure and retention.

Phone numbers, call recordings and raw vendor payloads are personal data (docs/privacy.md).
Nothing here imports Airflow: the DAGs ``phone_data_erasure`` and ``phone_data_retention`` and
``python -m phonecheck.cli erase|retention`` are thin wrappers around these functions.
"""

from phonecheck.privacy.masking import mask_number, mask_numbers_in_text

__all__ = ["mask_number", "mask_numbers_in_text"]
