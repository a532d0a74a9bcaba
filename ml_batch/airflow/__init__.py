"""The thin Airflow shim: the only part of ml_batch that imports Airflow (lazily, inside functions or in
`dag_factory`, which only the DAG files import). Everything it calls lives in plain `ml_batch` modules."""
