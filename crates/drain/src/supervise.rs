//! Background tasks that may not end silently.
//!
//! A `tokio::spawn`ed task that panics ends alone: the runtime keeps going,
//! the panic message goes to stderr without the task's name, and whatever the
//! task did (follow a registry, reload a config, accept on a listener) stops
//! while the process still looks healthy. Every long-lived task of a lameduck
//! part is started by one of two helpers instead, chosen by what losing it
//! means:
//!
//! - [`spawn_restarting`]: a task that keeps no state of its own (a poller,
//!   a follower, a timer, a registration kept alive). When it panics, or
//!   returns although it is [`Ends::Never`], an error line names it and says
//!   what happened, and it is started again after [`RESTART_AFTER`] from its
//!   closure. An [`Ends::WhenDone`] task's return is its normal end.
//! - [`spawn_fatal`]: a task that cannot be started again, or whose loss
//!   leaves the process unable to do its job while looking alive (an accept
//!   loop that owns its listener, a probe listener the kubelet reads). A
//!   return is its normal end; a panic is logged with its name and ends the
//!   process with [`FATAL_EXIT`], so that whatever supervises the process (the
//!   kubelet, systemd) restarts it.
//!
//! Aborting the handle either helper returns also aborts the task it runs.

use std::{future::Future, time::Duration};

use tokio::task::{AbortHandle, JoinError, JoinHandle};

/// The wait before a restarting task is started again: long enough that a
/// task panicking at once does not spin, short enough to lose little.
pub const RESTART_AFTER: Duration = Duration::from_secs(1);

/// The exit status after a fatal task panicked (`EX_SOFTWARE`).
pub const FATAL_EXIT: i32 = 70;

/// Whether a restarting task has a normal end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    /// It runs until its owner aborts it: a return is a bug, restarted.
    Never,
    /// A return is its normal end (say, the drain began); only a panic is
    /// restarted.
    WhenDone,
}

/// Aborts a task when dropped: the supervisor's own abort reaches it.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How one run of a task ended, for the log; `None` when it was cancelled
/// (its owner aborted it, or the runtime is shutting down).
fn outcome(result: Result<(), JoinError>) -> Option<String> {
    match result {
        Ok(()) => Some("returned".to_string()),
        Err(e) if e.is_panic() => Some(format!("panicked: {}", panic_message(e))),
        Err(_) => None,
    }
}

fn panic_message(e: JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Runs `make()` as a task, and again after [`RESTART_AFTER`] whenever it
/// panics (or returns, if it [`Ends::Never`]), each time with an error line
/// naming `name`.
pub fn spawn_restarting<F, Fut>(name: impl Into<String>, ends: Ends, mut make: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = name.into();
    tokio::spawn(async move {
        loop {
            let task = tokio::spawn(make());
            let _abort = AbortOnDrop(task.abort_handle());
            let result = task.await;
            if ends == Ends::WhenDone && result.is_ok() {
                return;
            }
            let Some(what) = outcome(result) else {
                return;
            };
            tracing::error!(
                task = %name,
                restart_in = ?RESTART_AFTER,
                "background task {name} {what}; starting it again"
            );
            tokio::time::sleep(RESTART_AFTER).await;
        }
    })
}

/// Runs `task`; if it panics, logs an error line naming `name` and ends the
/// process with [`FATAL_EXIT`]. Its return is its normal end.
pub fn spawn_fatal<Fut>(name: impl Into<String>, task: Fut) -> JoinHandle<()>
where
    Fut: Future<Output = ()> + Send + 'static,
{
    spawn_fatal_with(name.into(), task, |code| std::process::exit(code))
}

/// [`spawn_fatal`] with the exit in `exit`, so that a test can watch it.
fn spawn_fatal_with<Fut, X>(name: String, task: Fut, exit: X) -> JoinHandle<()>
where
    Fut: Future<Output = ()> + Send + 'static,
    X: FnOnce(i32) + Send + 'static,
{
    tokio::spawn(async move {
        let task = tokio::spawn(task);
        let _abort = AbortOnDrop(task.abort_handle());
        let result = task.await;
        if matches!(&result, Err(e) if e.is_panic()) {
            let what = outcome(result).unwrap_or_default();
            tracing::error!(
                task = %name,
                exit = FATAL_EXIT,
                "background task {name} {what}; ending the process"
            );
            exit(FATAL_EXIT);
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    };

    use super::*;

    /// Collects what is logged, for the assertions.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Log {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    async fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarting_task_that_panics_or_returns_is_logged_and_started_again() {
        let (log, _guard) = capture();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let handle = spawn_restarting("follower app", Ends::Never, move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match run {
                    0 => panic!("injected failure"),
                    1 => {} // returns
                    _ => std::future::pending().await,
                }
            }
        });
        wait_until("three runs", || runs.load(Ordering::SeqCst) == 3).await;
        let text = log.text();
        assert!(
            text.contains("ERROR")
                && text.contains(
                    "background task follower app panicked: injected failure; starting it again"
                ),
            "{text}"
        );
        assert!(
            text.contains("background task follower app returned; starting it again"),
            "{text}"
        );
        // Aborting the handle ends the task it runs too: no fourth run.
        handle.abort();
        tokio::time::sleep(RESTART_AFTER * 3).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_when_done_is_restarted_after_a_panic_only() {
        let (log, _guard) = capture();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let handle = spawn_restarting("registration", Ends::WhenDone, move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(run > 0, "injected failure");
            }
        });
        handle
            .await
            .expect("the supervisor ends after the normal end");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let text = log.text();
        assert!(
            text.contains("registration panicked: injected failure"),
            "{text}"
        );
        assert!(!text.contains("returned"), "{text}");
    }

    #[tokio::test]
    async fn a_fatal_task_that_panics_is_logged_and_ends_the_process() {
        let (log, _guard) = capture();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = async { panic!("injected failure") };
        let _supervisor = spawn_fatal_with("admin listener".into(), task, move |code| {
            let _ = tx.send(code);
        });
        assert_eq!(rx.await.expect("the exit was called"), FATAL_EXIT);
        let text = log.text();
        assert!(
            text.contains("ERROR")
                && text.contains(
                    "background task admin listener panicked: injected failure; ending the process"
                ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_fatal_task_that_returns_ends_quietly() {
        let (log, _guard) = capture();
        let exited = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&exited);
        let handle = spawn_fatal_with("accept loop".into(), async {}, move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        handle.await.expect("the supervisor ends");
        assert_eq!(exited.load(Ordering::SeqCst), 0);
        assert!(!log.text().contains("ERROR"), "{}", log.text());
    }
}
