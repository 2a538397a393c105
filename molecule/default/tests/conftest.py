import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'shared'))
from labcheck import open_lab  # noqa: E402


@pytest.fixture(scope='session')
def lab():
    return open_lab()
