# legato worker image: `docker build -t legato .`
# Your workflows go on top: FROM legato, COPY your package, set LEGATO_APP.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 legato
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER legato
WORKDIR /home/legato
ENV PYTHONUNBUFFERED=1 \
    LEGATO_HTTP_HOST=0.0.0.0 \
    LEGATO_HTTP_PORT=9464
EXPOSE 9464
# SIGTERM starts the graceful shutdown: stop consuming, finish in-flight steps
# within LEGATO_GRACE seconds, return the rest to the queue.
STOPSIGNAL SIGTERM
ENTRYPOINT ["legato"]
CMD ["worker"]
