# Image for the web server, Celery workers and beat (see docker-compose.yml).
FROM python:3.13-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BREACHDESK_VAR_DIR=/var/lib/breachdesk STATIC_ROOT=/app/static
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Compiled message catalogues are built, not committed.
RUN python manage.py compile_translations && STATIC_ROOT=/app/static SECRET_KEY=build python manage.py collectstatic --noinput
RUN useradd --system breachdesk && mkdir -p /var/lib/breachdesk && chown breachdesk /var/lib/breachdesk
USER breachdesk
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000"]
