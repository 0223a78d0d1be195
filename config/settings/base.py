"""Settings shared by every environment. Every value can be set from the environment.

Local defaults are safe and need nothing installed: SQLite in ``var/``, the local provider
for email, and a Redis URL that the run and test commands fill in with a Redis they start.
"""

from pathlib import Path

import dj_database_url

from config.logging import logging_config

from .env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

# The public address of this service, used in every link that goes out by email.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", SITE_URL)

# The publisher, as readers see it in pages and emails.
PUBLICATION_NAME = env_str("PUBLICATION_NAME", "The Riverside Courier")
PUBLICATION_URL = env_str("PUBLICATION_URL", "https://example.com").rstrip("/")
PUBLICATION_LOGO_URL = env_str("PUBLICATION_LOGO_URL", "")
PUBLICATION_POSTAL_ADDRESS = env_str("PUBLICATION_POSTAL_ADDRESS", "1 Market Square, Riverside")
PUBLICATION_TIME_ZONE = env_str("PUBLICATION_TIME_ZONE", "Europe/London")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "subscribers",
    "mailer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "subscribers.context_processors.publication",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'newsletter.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server, worker and beat share one SQLite file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "newsletter"),
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Email: django-anymail; the provider is configuration -----------------------------------
# Anymail's Mailgun backend with cheaper 1,000-recipient batch calls (same API and payload).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "mailer.sending.mailgun.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"{PUBLICATION_NAME} <newsletter@example.com>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Address for mailto: List-Unsubscribe; empty leaves the https URL alone.
LIST_UNSUBSCRIBE_MAILTO = env_str("LIST_UNSUBSCRIBE_MAILTO", "")
LIST_ID = env_str("LIST_ID", "newsletter.example.com")
LOCAL_PROVIDER_URL = env_str("LOCAL_PROVIDER_URL", "http://127.0.0.1:8025")
ANYMAIL = {
    "MAILGUN_API_KEY": env_str("MAILGUN_API_KEY", "local-provider-key"),
    "MAILGUN_SENDER_DOMAIN": env_str("MAILGUN_SENDER_DOMAIN", "example.com"),
    "MAILGUN_API_URL": env_str("MAILGUN_API_URL", f"{LOCAL_PROVIDER_URL}/v3"),
    "MAILGUN_WEBHOOK_SIGNING_KEY": env_str("MAILGUN_WEBHOOK_SIGNING_KEY", "local-webhook-signing-key"),
    # Basic auth in front of the tracking webhook: "user:password".
    "WEBHOOK_SECRET": env_str("ANYMAIL_WEBHOOK_SECRET", "local:webhook-secret"),
    "REQUESTS_TIMEOUT": (5, 30),
}
# Providers whose tracking webhook is routed at /anymail/<name>/tracking/ (Anymail's names).
ANYMAIL_TRACKING_PROVIDERS = env_list("ANYMAIL_TRACKING_PROVIDERS", "mailgun")
# Recipients per provider call (Mailgun allows 1,000).
PROVIDER_BATCH_SIZE = env_int("PROVIDER_BATCH_SIZE", 1000)
# How a per-recipient merge field is written in a body for the provider's batch sending
# (Mailgun: %recipient.name%; SendGrid: -name-; Postmark/Brevo: {{name}}). Rendering writes
# placeholders with it; the batch call fills them from each recipient's merge_data.
PROVIDER_MERGE_FIELD = env_str("PROVIDER_MERGE_FIELD", "%recipient.{}%")
# Messages per second for all workers together; 0 means no limit.
PROVIDER_RATE_LIMIT = env_int("PROVIDER_RATE_LIMIT", 0)
# Whether the provider accepts a repeated call with one X-Idempotency-Key only once (the local
# provider does; Mailgun does not). It decides how a batch found mid-submission after a crash is
# settled: replayed with its key, or held as uncertain and reconciled (docs/delivery.md).
PROVIDER_HONOURS_IDEMPOTENCY_KEY = env_bool(
    "PROVIDER_HONOURS_IDEMPOTENCY_KEY", ANYMAIL["MAILGUN_API_URL"].startswith(LOCAL_PROVIDER_URL)
)
# Transient provider errors: retries per batch, first delay (ms) doubling up to a cap (s), jittered.
DELIVERY_MAX_RETRIES = env_int("DELIVERY_MAX_RETRIES", 8)
DELIVERY_RETRY_BACKOFF_MS = env_int("DELIVERY_RETRY_BACKOFF_MS", 2000)
DELIVERY_RETRY_BACKOFF_MAX = env_int("DELIVERY_RETRY_BACKOFF_MAX", 300)
# A batch "submitting" for longer than this (s) belongs to a dead worker and may be taken over.
DELIVERY_BATCH_LEASE = env_int("DELIVERY_BATCH_LEASE", 120)
# This many transient failures in a row pause the edition; it probes and resumes by itself.
PROVIDER_OUTAGE_THRESHOLD = env_int("PROVIDER_OUTAGE_THRESHOLD", 5)
PROVIDER_OUTAGE_PROBE_SECONDS = env_int("PROVIDER_OUTAGE_PROBE_SECONDS", 60)
# How long an uncertain batch waits for the provider's events before its silent recipients
# are marked failed ("uncertain") for an editor to retry.
DELIVERY_RECONCILE_SECONDS = env_int("DELIVERY_RECONCILE_SECONDS", 6 * 3600)

# --- Subscribers -----------------------------------------------------------------------------
CONFIRMATION_MAX_AGE = env_int("CONFIRMATION_MAX_AGE", 7 * 24 * 3600)  # seconds
# Lifetime of the preferences and unsubscribe links that travel in every email (seconds).
SUBSCRIBER_LINK_MAX_AGE = env_int("SUBSCRIBER_LINK_MAX_AGE", 365 * 24 * 3600)
# At most one confirmation email per address within this window (anti inbox-bombing).
CONFIRMATION_RESEND_WINDOW = env_int("CONFIRMATION_RESEND_WINDOW", 3600)
SIGNUP_RATE_LIMIT_PER_IP = env_int("SIGNUP_RATE_LIMIT_PER_IP", 20)  # per window below
SIGNUP_RATE_LIMIT_WINDOW = env_int("SIGNUP_RATE_LIMIT_WINDOW", 3600)
SIGNUP_CORS_ORIGINS = env_list("SIGNUP_CORS_ORIGINS", PUBLICATION_URL)
SOFT_BOUNCE_LIMIT = env_int("SOFT_BOUNCE_LIMIT", 3)
# Number of proxies in front of the service whose X-Forwarded-For we trust (0: use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# --- Mailer ----------------------------------------------------------------------------------
# The site's feed, polled by beat; more feeds can be added in the admin.
FEED_URL = env_str("FEED_URL", "")
FEED_POLL_MINUTES = env_int("FEED_POLL_MINUTES", 10)
FEED_MAX_BYTES = env_int("FEED_MAX_BYTES", 5 * 1024 * 1024)
# Seconds to wait for the feed server to connect or send the next bytes, and for the whole body.
FEED_TIMEOUT = env_int("FEED_TIMEOUT", 15)
FEED_DEADLINE = env_int("FEED_DEADLINE", 60)
# The CMS articles API: largest request body (bytes) and requests per minute per token.
ARTICLE_API_MAX_BYTES = env_int("ARTICLE_API_MAX_BYTES", 512 * 1024)
ARTICLE_API_RATE_LIMIT = env_int("ARTICLE_API_RATE_LIMIT", 120)

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
# A task that is not acked within this many seconds is redelivered to another worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 900)}
CELERY_TIMEZONE = "UTC"
# Workers run at this niceness (0 to 19): on a machine they share with the web, a reader's
# request gets the CPU before the bulk send, which only slows down while the web is busy.
WORKER_NICENESS = env_int("WORKER_NICENESS", 10)

# Structured log lines (key=value, or JSON with LOG_FORMAT=json) carrying the edition and batch
# ids that config.logging.log_context sets. The worker keeps this configuration instead of
# installing Celery's own handlers, so its lines look the same as the web's.
LOGGING = logging_config(level=env_str("LOG_LEVEL", "INFO"), fmt=env_str("LOG_FORMAT", "kv"))
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
