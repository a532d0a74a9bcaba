# Airflow image with ml-batch installed, for docker-compose.yaml (a production-like local stack).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.txt pyproject.toml README.md /opt/ml-batch/
COPY --chown=airflow:root ml_batch /opt/ml-batch/ml_batch
RUN pip install --no-cache-dir -r /opt/ml-batch/requirements.txt \
 && pip install --no-cache-dir --no-deps /opt/ml-batch
