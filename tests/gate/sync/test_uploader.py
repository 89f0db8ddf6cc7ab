"""The outbox upload window: what is sent, when it is sent again."""

from gate.sync.uploader import Uploader


def test_the_window_limits_unacknowledged_events():
    up = Uploader(acked=0, window=250, batch=100, resend_after=30)
    assert up.next_batch(0) == (0, 100)
    up.published(100, 0)
    assert up.next_batch(0) == (100, 100)
    up.published(200, 0)
    assert up.next_batch(0) == (200, 50)
    up.published(250, 0)
    assert up.next_batch(0) is None
    up.on_ack(120, 1)
    assert up.next_batch(1) == (250, 100)


def test_a_reconnect_sends_everything_unacknowledged_again():
    up = Uploader(acked=40, window=1000, batch=100, resend_after=30)
    up.published(140, 0)
    up.on_reconnect()
    assert up.next_batch(0) == (40, 100)


def test_when_acks_stop_coming_the_unacknowledged_events_go_again():
    up = Uploader(acked=0, window=1000, batch=100, resend_after=30)
    up.published(100, 0)
    assert up.next_batch(29) == (100, 100)
    assert up.next_batch(31) == (0, 100)


def test_an_old_ack_changes_nothing():
    up = Uploader(acked=50, window=1000, batch=100, resend_after=30)
    up.on_ack(10, 0)
    assert up.acked == 50 and up.next_batch(0) == (50, 100)
