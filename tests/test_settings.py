import subprocess
import sys

import pytest
from django.conf import settings

from tests.fixtures.worker import ROOT


def test_services_are_configured_from_the_environment():
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    assert settings.EMAIL_BACKEND == "anymail.backends.mailgun.EmailBackend"
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST


@pytest.mark.parametrize(
    ("secret", "site_url", "message"),
    [
        ("", "https://news.example.com", "SECRET_KEY must be set"),
        (
            "dev-only-insecure-key-do-not-use-in-production",
            "https://news.example.com",
            "SECRET_KEY must be set",
        ),
        ("x" * 50, "http://news.example.com", "SITE_URL must be an https"),
    ],
)
def test_production_settings_refuse_to_start_unsafe(secret, site_url, message):
    env = {
        "PATH": "/usr/bin:/bin",
        "SECRET_KEY": secret,
        "SITE_URL": site_url,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_start_with_a_real_secret():
    env = {
        "PATH": "/usr/bin:/bin",
        "SECRET_KEY": "k" * 50,
        "SITE_URL": "https://news.example.com",
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.SESSION_COOKIE_SECURE, settings.DEBUG)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True False"
