"""AccuAuth phone status (docs/vendors/accuauth.md): wire clients, submit orchestration, the
multi-task waiter, warehouse bookkeeping. Plain Python: never imports Airflow."""
