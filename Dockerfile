# One image for the four services (the command picks the service). Built from the locked workspace.
FROM python:3.11-slim
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 PYTHONUNBUFFERED=1
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY . .
RUN uv sync --locked --no-dev && useradd --system --uid 10001 datastore
ENV PATH=/app/.venv/bin:$PATH
USER 10001
EXPOSE 8000
CMD ["datastore-gateway"]
