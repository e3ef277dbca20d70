# One image for every dljobs service (api, worker, migrate, flower); compose picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DLJOBS_DATA_DIR=/data

WORKDIR /app
# Metadata first so the dependency layer is cached across source changes.
COPY pyproject.toml README.md ./
COPY dlcore ./dlcore
COPY dljobs ./dljobs
COPY api ./api
COPY workers ./workers
COPY migrations ./migrations
COPY plugins ./plugins
COPY examples ./examples
# Editable install: `dljobs db upgrade` finds migrations/ next to the package.
RUN pip install -e ./dlcore -e . "flower>=2.0" \
    && for p in plugins/*/; do [ -f "$p/pyproject.toml" ] && pip install -e "$p"; done; \
    useradd --create-home --uid 10001 dljobs \
    && mkdir -p /data && chown dljobs /data

USER dljobs
EXPOSE 8000 5555
CMD ["dljobs", "up", "--host", "0.0.0.0", "--port", "8000"]
