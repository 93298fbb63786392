import pytest

from streams.errors import ConfigError
from streams.runtime.backpressure import Backpressure

pytestmark = pytest.mark.unit


def test_low_water_marks_default_to_half() -> None:
    bp = Backpressure(max_messages=10, max_bytes=1001)
    assert (bp.low_messages, bp.low_bytes) == (5, 500)


def test_pauses_at_the_message_bound_and_resumes_only_at_the_low_mark() -> None:
    bp = Backpressure(max_messages=4, max_bytes=10_000)
    for _ in range(3):
        bp.add(1)
    assert not bp.should_pause
    bp.add(1)
    assert bp.should_pause
    bp.remove(1)
    assert not bp.should_pause
    assert not bp.should_resume  # 3 is between the marks: stay paused
    bp.remove(1)
    assert bp.should_resume  # 2 == low-water mark


def test_pauses_at_the_byte_bound() -> None:
    bp = Backpressure(max_messages=100, max_bytes=1000)
    bp.add(600)
    assert not bp.should_pause
    bp.add(400)
    assert bp.should_pause
    assert (bp.messages, bp.nbytes) == (2, 1000)


def test_resume_needs_both_counts_low() -> None:
    bp = Backpressure(max_messages=10, max_bytes=1000, low_messages=2, low_bytes=100)
    bp.add(900)
    assert bp.messages <= bp.low_messages
    assert not bp.should_resume  # few messages, but too many bytes
    bp.remove(900)
    for _ in range(3):
        bp.add(1)
    assert not bp.should_resume  # few bytes, but too many messages
    bp.remove(1)
    assert bp.should_resume


def test_one_message_larger_than_max_bytes_is_admitted_and_pauses() -> None:
    bp = Backpressure(max_messages=10, max_bytes=100)
    bp.add(5000)
    assert bp.should_pause
    bp.remove(5000)
    assert bp.should_resume


def test_max_one_message_resumes_when_it_is_done() -> None:
    bp = Backpressure(max_messages=1, max_bytes=1)
    bp.add(0)
    assert bp.should_pause
    bp.remove(0)
    assert bp.should_resume


def test_hysteresis_bounds_pause_resume_flapping() -> None:
    bp = Backpressure(max_messages=100, max_bytes=10**9)
    paused = False
    transitions = 0
    # Hover around the high mark: +1, -1, +1, -1 ... as a busy consumer would.
    for _ in range(99):
        bp.add(10)
    for step in range(1000):
        if step % 2 == 0:
            bp.add(10)
        else:
            bp.remove(10)
        if not paused and bp.should_pause:
            paused, transitions = True, transitions + 1
        elif paused and bp.should_resume:
            paused, transitions = False, transitions + 1
    assert paused
    assert transitions == 1


def test_remove_without_add_is_an_error_not_a_negative_count() -> None:
    bp = Backpressure(max_messages=10, max_bytes=100)
    with pytest.raises(ValueError, match="without a matching add"):
        bp.remove(0)
    bp.add(5)
    with pytest.raises(ValueError, match="without a matching add"):
        bp.remove(6)
    with pytest.raises(ValueError, match=">= 0"):
        bp.add(-1)
    assert (bp.messages, bp.nbytes) == (1, 5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_messages": 0}, "max_messages must be an integer > 0"),
        ({"max_bytes": -5}, "max_bytes must be an integer > 0"),
        ({"max_messages": 1.5}, "max_messages must be an integer"),
        ({"max_messages": True}, "max_messages must be an integer"),
        ({"low_messages": 10}, r"low_messages \(10\) must be below max_messages \(10\)"),
        ({"low_bytes": 2000}, r"low_bytes \(2000\) must be below max_bytes"),
        ({"low_bytes": -1}, "low_bytes must be an integer >= 0"),
    ],
)
def test_nonsense_settings_are_config_errors(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"max_messages": 10, "max_bytes": 1000, **options}
    with pytest.raises(ConfigError, match=message):
        Backpressure(**arguments)  # type: ignore[arg-type]
