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
# gunicorn.conf.py reads PORT, WEB_CONCURRENCY and friends at run time (the dev stack uses it too).
CMD ["gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
