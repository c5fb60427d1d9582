"""SIGINT/SIGTERM handling: a first signal asks for a stop, a second one stops at once."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from encoderkit.training.signals import Interrupted, sigterm_raises, stop_between_steps


def send(signum: int) -> None:
    signal.raise_signal(signum)  # its Python handler runs before the next statement


@pytest.fixture
def sigint_not_ignored() -> Iterator[None]:
    """A test run started in the background (`cmd &`) inherits an ignored SIGINT, which
    stop_between_steps rightly leaves ignored; these tests are about a terminal user's SIGINT."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("sigint_not_ignored")
def test_a_first_signal_only_asks_and_a_second_stops_at_once(capsys: pytest.CaptureFixture) -> None:
    before = signal.getsignal(signal.SIGINT)
    with stop_between_steps() as stop:
        assert not stop.requested
        send(signal.SIGTERM)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(Interrupted) as stopped:
            send(signal.SIGINT)
    assert stopped.value.exit_code == 130 and stopped.value.step is None
    assert "SIGTERM: saving a checkpoint after this step" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before, "the handlers are put back"


def test_interrupted_names_the_signal_the_step_and_what_to_do() -> None:
    stopped = Interrupted(signal.SIGTERM, 8)
    assert stopped.exit_code == 143
    assert str(stopped) == (
        "stopped by SIGTERM after step 8, checkpoint saved; add --resume to the same command to continue"
    )
    assert isinstance(stopped, KeyboardInterrupt), "ends the command the way Ctrl-C does"


def test_sigterm_outside_the_steps_raises() -> None:
    with pytest.raises(Interrupted) as stopped, sigterm_raises():
        send(signal.SIGTERM)
    assert stopped.value.exit_code == 143


def test_an_ignored_signal_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_between_steps() as stop:
            send(signal.SIGINT)
            assert not stop.requested
    finally:
        signal.signal(signal.SIGINT, previous)
