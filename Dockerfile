# The web app and the Huey worker share this image; docker-compose.yml picks the command.
FROM python:3.13-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Requirements first, so editing code does not reinstall every package.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code stays root-owned: the app user can read it but not rewrite it.
COPY . .
RUN useradd --create-home --uid 10001 app
USER app

EXPOSE 5000
# Shell form so PORT and WEB_CONCURRENCY apply at run time; exec so gunicorn gets the signals.
CMD exec gunicorn wsgi:app --bind "0.0.0.0:${PORT:-5000}" --workers "${WEB_CONCURRENCY:-2}" \
    --no-control-socket --access-logfile -
