# One image for every role: `alerts run`, `alerts api`, `alerts engine`, `alerts worker`,
# `alerts bot`, `alerts simulate`. Build: docker build -t xrocket-alerts .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY alerts ./alerts
COPY api ./api
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////data/alerts.db
RUN useradd --create-home --uid 10001 alerts \
    && mkdir /data && chown alerts /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
# Migrations are read from here by `alerts db upgrade`.
COPY alembic.ini ./
COPY alembic ./alembic
USER alerts
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["alerts"]
CMD ["run", "--host", "0.0.0.0", "--port", "8000"]
