pytest_plugins = [
    "tests.fixtures.core",
    "tests.fixtures.provider",
    "tests.fixtures.worker",
    "tests.fixtures.browser",
    "tests.fixtures.feeds",
]
