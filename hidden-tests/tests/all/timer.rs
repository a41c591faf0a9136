//! Category `timer` (exercise 2.2): the thread-backed `TimerFuture` and `FirstTimer`, polled by
//! hand or run on `futures`' own `block_on`. Timings are lower bounds only.

use std::panic;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use hidden_tests::{expect_within, poll_with, probe_waker, with_watchdog, HANG_SECS, WAIT};
use runtime::timer::{FirstTimer, TimerFuture};

/// Targets a timer that never fires, fires early, or does not wake `block_on`: the future can only
/// be ready once its duration has passed since `new`, and then it must be.
#[test]
fn timer_block_on_waits_at_least_its_duration() {
    let elapsed = with_watchdog(HANG_SECS, "block_on(timer::TimerFuture)", || {
        let start = Instant::now();
        block_on(TimerFuture::new(Duration::from_millis(50)));
        start.elapsed()
    });
    assert!(
        elapsed >= Duration::from_millis(50),
        "a 50 ms timer was ready after {elapsed:?}"
    );
}

/// Targets a timer that does not wake the waker of a pending poll, or is not ready after it fired:
/// a poll before the deadline pends (a `Ready` there is only legal once the duration has passed),
/// the firing wakes the stored waker from the timer's thread, and the next poll is ready.
#[test]
fn timer_wakes_the_pending_poll_then_is_ready() {
    let duration = Duration::from_millis(100);
    let (waker, probe) = probe_waker();
    let start = Instant::now();
    let mut timer = Box::pin(TimerFuture::new(duration));
    if poll_with(timer.as_mut(), &waker).is_pending() {
        expect_within(
            "the timer to wake the waker of the pending poll",
            WAIT,
            |t| probe.wait_for_wakes(1, t),
        );
        assert_eq!(poll_with(timer.as_mut(), &waker), Poll::Ready(()));
    }
    assert!(
        start.elapsed() >= duration,
        "a 100 ms timer was ready after {:?}",
        start.elapsed()
    );
}

/// Targets a `FirstTimer` that returns the wrong index or does not wake: of three timers, the
/// 30 ms one (index 1) fires seconds before the others, so it wins.
#[test]
fn first_timer_returns_index_of_first_to_fire() {
    let (index, elapsed) = with_watchdog(HANG_SECS, "block_on(FirstTimer)", || {
        let start = Instant::now();
        let index = block_on(FirstTimer::new(&[
            Duration::from_millis(1500),
            Duration::from_millis(30),
            Duration::from_millis(2000),
        ]));
        (index, start.elapsed())
    });
    assert_eq!(index, 1, "the 30 ms timer fires first");
    assert!(elapsed >= Duration::from_millis(30));
}

/// Targets a `FirstTimer` that reports the timer that *fired* (or woke) first instead of the lowest
/// index among those fired by the time of the poll: index 0 (60 ms) fires after indices 1 and 2
/// (20 ms), and the `FirstTimer` is polled only after all three have had ample time to fire, so the
/// spec's answer is 0. On a heavily loaded machine a timer thread may still be late, giving another
/// legal answer; the trial is then repeated, and one trial answering 0 suffices.
#[test]
fn first_timer_lowest_index_wins_among_fired() {
    let durations = [
        Duration::from_millis(60),
        Duration::from_millis(20),
        Duration::from_millis(20),
    ];
    let (waker, _probe) = probe_waker();
    let mut answers = Vec::new();
    for polled_early in [true, false, true, false] {
        let mut first = Box::pin(FirstTimer::new(&durations));
        if polled_early {
            // Registers the waker first, so that the 20 ms timers wake it when they fire.
            if let Poll::Ready(index) = poll_with(first.as_mut(), &waker) {
                answers.push(Some(index));
                continue;
            }
        }
        thread::sleep(Duration::from_millis(400));
        match poll_with(first.as_mut(), &waker) {
            Poll::Ready(0) => return,
            Poll::Ready(index) => answers.push(Some(index)),
            // Only a timer thread stalled for 340 ms leaves it pending: another trial.
            Poll::Pending => answers.push(None),
        }
    }
    panic!(
        "FirstTimer::new(&[60 ms, 20 ms, 20 ms]) polled 400 ms later must return 0 (the lowest index of \
         the fired timers), got {answers:?} (None: still pending)"
    );
}

/// Targets a `timer::TimerFuture` that starts counting at its first poll (a thread spawned by
/// `poll`) instead of in `new`: a 150 ms timer is left alone for 300 ms after `new`, then polled.
/// It fired 150 ms before that poll, so the poll is `Ready`, or (if the timer's thread ran late)
/// it pends and its waker is woken soon; a timer started by the poll needs the full 150 ms after
/// it. Only a timer that fires 300 ms late could fail a trial, and one good trial of three is
/// enough.
#[test]
fn timer_countdown_starts_in_new() {
    let duration = Duration::from_millis(150);
    let mut waits = Vec::new();
    for _ in 0..3 {
        let waited = with_watchdog(HANG_SECS, "a timer polled after its deadline", move || {
            let mut timer = Box::pin(TimerFuture::new(duration));
            thread::sleep(2 * duration);
            let (waker, probe) = probe_waker();
            let polled = Instant::now();
            if poll_with(timer.as_mut(), &waker).is_pending() {
                assert!(
                    probe.wait_for_wakes(1, WAIT),
                    "a timer polled after its deadline pended and was never woken"
                );
                assert_eq!(poll_with(timer.as_mut(), &waker), Poll::Ready(()));
            }
            polled.elapsed()
        });
        if waited < duration {
            return;
        }
        waits.push(waited);
    }
    panic!(
        "a 150 ms timer polled 300 ms after new() was ready only {waits:?} after that poll: \
         the countdown must start in new(), not at the first poll"
    );
}

/// Targets `FirstTimer` with a single timer, and `FirstTimer::new(&[])`, which must panic (the
/// ready check comes first, so that an unimplemented `new` cannot pass by panicking).
#[test]
fn first_timer_single_timer_and_empty_panics() {
    let index = with_watchdog(HANG_SECS, "block_on(FirstTimer::new(&[0 ms]))", || {
        block_on(FirstTimer::new(&[Duration::ZERO]))
    });
    assert_eq!(index, 0);
    assert!(
        panic::catch_unwind(|| FirstTimer::new(&[])).is_err(),
        "FirstTimer::new(&[]) must panic"
    );
}
