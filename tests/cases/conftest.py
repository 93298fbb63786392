from __future__ import annotations

import pytest

from tests.cases._transports import Kafka, Transport, Twin


@pytest.fixture(
    params=[
        pytest.param("twin", marks=pytest.mark.unit),
        pytest.param("kafka", marks=pytest.mark.integration),
    ]
)
def transport(request: pytest.FixtureRequest) -> Transport:
    """Each case runs on the in-memory twin and on the real broker (started only for the latter)."""
    if request.param == "twin":
        return Twin()
    return Kafka(request.getfixturevalue("settings"), request.getfixturevalue("registry"))
