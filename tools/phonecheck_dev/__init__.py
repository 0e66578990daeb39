"""Local tooling: the launcher (``make airflow``), the demo (``make demo``) and dev helpers; the image does not ship it."""
