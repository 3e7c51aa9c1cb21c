# OutputLayer API server. Configure it with OUTPUTLAYER_* variables (README.md, docs/PRODUCTION.md);
# docker-compose.yml runs it with PostgreSQL and MinIO.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --user-group --create-home outputlayer \
    && install -d -o outputlayer -g outputlayer /var/lib/outputlayer

WORKDIR /src
COPY pyproject.toml README.md ./
COPY store ./store
COPY rest ./rest
COPY outputlayer_mcp ./outputlayer_mcp
RUN pip install . && rm -rf /src

WORKDIR /var/lib/outputlayer
USER outputlayer
# Only used by the embedded defaults (SQLite + files); with PostgreSQL and S3 the container keeps no state.
ENV OUTPUTLAYER_DATA_DIR=/var/lib/outputlayer
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["outputlayer", "serve", "--host", "0.0.0.0", "--port", "8000"]
