# One image for web, worker and beat, built as bin/run sets up a machine: the pinned
# requirements, then the source (.dockerignore keeps .venv, var/ and .env out of it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production VAR_DIR=/app/var
WORKDIR /app
RUN useradd --create-home --uid 1000 app
COPY requirements.txt .
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.txt
COPY . .
RUN mkdir -p /app/var && chown -R app /app/var \
    && SECRET_KEY=build-only-collectstatic-key-0123456789abcdefghijklmnop SITE_URL=https://build.invalid \
       python manage.py collectstatic --noinput -v 0
USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--access-logfile", "-"]
