//! Signals: SIGINT, SIGTERM and SIGHUP caught once, seen by the work in progress, and the
//! exit status a shell expects (128 + n).

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The signal that interrupted this process (0: none), set by [`catch_signals`].
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

/// True once SIGINT, SIGTERM or SIGHUP arrived after [`catch_signals`].
pub fn interrupted() -> bool {
    SIGNALLED.load(Ordering::SeqCst) != 0
}

/// The name of the signal that arrived, if one did.
pub fn interrupting_signal() -> Option<&'static str> {
    match SIGNALLED.load(Ordering::SeqCst) {
        0 => None,
        2 => Some("SIGINT"),
        15 => Some("SIGTERM"),
        1 => Some("SIGHUP"),
        _ => Some("a signal"),
    }
}

/// The exit status of a process stopped by the signal that arrived, as a shell reports one
/// killed by it: 128 + its number (SIGINT 130, SIGTERM 143, SIGHUP 129). `None`: no signal.
pub fn signal_exit_status() -> Option<u8> {
    match SIGNALLED.load(Ordering::SeqCst) {
        0 => None,
        n => u8::try_from(128 + n).ok(),
    }
}

/// Catches SIGINT, SIGTERM and SIGHUP for the rest of the process's life: instead of dying
/// wherever it is, the work in progress sees [`interrupted`] and cleans up or rolls back.
/// Needs a tokio runtime. A second signal of the same kind is caught too: the cleanup finishes.
pub fn catch_signals() {
    use tokio::signal::unix::{signal, SignalKind};
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    ONCE.call_once(|| first = true);
    if !first {
        return;
    }
    for (kind, num) in [(SignalKind::interrupt(), 2), (SignalKind::terminate(), 15), (SignalKind::hangup(), 1)] {
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    SIGNALLED.store(num, Ordering::SeqCst);
                }
            });
        }
    }
}

/// Resolves when [`interrupted`] turns true (polled every 50 ms).
pub async fn until_interrupted() {
    while !interrupted() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
