import pytest


@pytest.fixture(scope="session")
def browser():
    from browser import Browser

    b = Browser()
    yield b
    b.close()
