"""AccuAuth phone status (SEED 002, api-facts.md §7): wire clients, submit orchestration, the
multi-task waiter, warehouse bookkeeping. Plain Python: never imports Airflow."""
