"""NXCLOUD number check logic that does not need Airflow.

* :mod:`.errors`: vendor codes mapped to exceptions whose messages never carry secrets.
* :mod:`.ratelimit`: the query API's "one call every N s", shared across threads.
* :mod:`.planning`: chunks within the vendor limits and deterministic ``batchNo`` values.
* :mod:`.cost`: cost estimate from recent prices (fallback price list) and the budget guard.
* :mod:`.submissions`: the ``ops.number_check_submission`` rows around the paid call.
* :mod:`.results`: counting, reconciling and loading results of our batches.
* :mod:`.daily`: the daily query-API sync (vendor date, 14-day window, missing pushes).
* :mod:`.sync`: the one query-API loop over our batches, shared by reconcile and the daily sync.
"""
