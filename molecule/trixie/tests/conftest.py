import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault('PGHA_VERIFY_INVENTORY', os.path.join(HERE, '..', 'inventory'))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'shared'))
from labcheck import open_lab  # noqa: E402


@pytest.fixture(scope='session')
def lab():
    return open_lab()
