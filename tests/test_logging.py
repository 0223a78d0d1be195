"""Structured log lines carry the edition and batch set with config.logging.log_context."""

import io
import json
import logging
import os
import subprocess
import sys
import threading

from config.logging import (
    ContextFilter,
    JsonFormatter,
    KeyValueFormatter,
    bind_log_context,
    current_context,
    log_context,
)
from tests.fixtures.worker import ROOT


def _logger(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"test.structured.{id(stream)}")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    return logger, stream


def test_every_line_inside_a_context_carries_the_digest_and_batch():
    logger, stream = _logger(KeyValueFormatter())
    with log_context(digest_id=7):
        logger.info("edition started")
        with log_context(batch_id=31):
            logger.info("batch sent", extra={"recipients": 1000})
        logger.info("edition finished")
    logger.info("idle")
    lines = stream.getvalue().splitlines()
    assert "digest_id=7" in lines[0] and "batch_id" not in lines[0]
    assert "digest_id=7 batch_id=31 recipients=1000" in lines[1]
    assert lines[1].endswith('msg="batch sent"')
    assert "digest_id=7" in lines[2] and "batch_id" not in lines[2]
    assert "digest_id" not in lines[3]
    assert current_context() == {}


def test_an_id_learnt_inside_a_block_is_bound_to_that_block_only():
    logger, stream = _logger(KeyValueFormatter())
    bind_log_context(digest_id=1)  # outside any block: nothing to bind to, nothing leaks
    with log_context(batch_id=31):
        bind_log_context(digest_id=7)
        logger.info("sending")
    logger.info("next task")
    first, second = stream.getvalue().splitlines()
    assert "batch_id=31 digest_id=7" in first
    assert "digest_id" not in second and current_context() == {}


def test_a_message_cannot_forge_fields_or_lines():
    logger, stream = _logger(KeyValueFormatter())
    with log_context(digest_id=1):
        logger.warning("bad\nlevel=CRITICAL digest_id=666")
    output = stream.getvalue()
    assert output.count("\n") == 1
    assert 'msg="bad\\nlevel=CRITICAL digest_id=666"' in output


def test_json_lines_have_the_same_fields():
    logger, stream = _logger(JsonFormatter())
    with log_context(digest_id=3, batch_id=None):
        try:
            raise ValueError("provider said no")
        except ValueError:
            logger.exception("batch failed")
    record = json.loads(stream.getvalue())
    assert record["digest_id"] == 3 and "batch_id" not in record
    assert record["level"] == "ERROR" and record["msg"] == "batch failed"
    assert "ValueError: provider said no" in record["exc"]


def test_contexts_do_not_leak_between_threads():
    seen = {}

    def other():
        seen["other"] = current_context()

    with log_context(digest_id=9):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen["other"] == {}


def test_the_project_settings_log_json_when_asked():
    code = (
        "import django, logging; django.setup(); from config.logging import log_context\n"
        "with log_context(digest_id=5, batch_id=6): logging.getLogger('mailer.sending').info('sent')"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["logger"] == "mailer.sending" and line["digest_id"] == 5 and line["batch_id"] == 6
