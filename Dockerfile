# Airflow image with ml-batch installed, for docker-compose.yaml (the CeleryExecutor deployment stack).
FROM apache/airflow:3.3.2-python3.11
# gcc and the libc headers: a worker that trains or registers a tree model compiles it to native code
# (`ml_batch.model.compiled`); scoring only loads such libraries (glibc, in the image already). The packages come
# from the base image's Debian release and its security updates, so their versions are not pinned here.
USER 0
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
USER 50000
COPY --chown=airflow:root requirements.txt pyproject.toml README.md /opt/ml-batch/
COPY --chown=airflow:root ml_batch /opt/ml-batch/ml_batch
RUN pip install --no-cache-dir -r /opt/ml-batch/requirements.txt \
 && pip install --no-cache-dir --no-deps /opt/ml-batch \
 && mkdir -p /opt/airflow/auth /opt/airflow/ml_batch_home \
 && chmod g+rwx /opt/airflow/auth /opt/airflow/ml_batch_home
# Runs as the image's non-root `airflow` user, uid 50000 (docker-compose.yaml may set another uid, group 0).
USER 50000
