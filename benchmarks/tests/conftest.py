"""The benchmark tests use seqlab's own fixtures (tests/conftest.py): real configs, a real SQLite store,
the data cache seeded from ../shared/datasets."""

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
if str(CHECKOUT) not in sys.path:  # benchmarks/ and tests/ are folders of the checkout, not installed
    sys.path.insert(0, str(CHECKOUT))

from tests.conftest import (  # noqa: E402,F401  (fixtures are found by name in a conftest)
    _no_ambient_tracking_uri,
    _seeded_cache,
    client,
    data_cache,
    make_cfg,
    tracking_uri,
)
