-- ml-batch's data lives in its own database next to Airflow's metadata database.
CREATE DATABASE ml_batch OWNER airflow;
