# thingstash, small and unprivileged. Uses REDIS_URL when set (see compose.yaml), else an
# embedded Redis keeping its data in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --create-home thingstash

USER thingstash
# Inside a container the port must be reachable from outside it: listen on every address.
# Without a key (and without THINGSTASH_PUBLIC=1) the service refuses to start open.
ENV THINGSTASH_HOST=0.0.0.0 \
    PORT=8080 \
    THINGSTASH_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
CMD ["thingstash", "serve"]
