//! A fatal background task that panics ends the real process with status 70
//! and an error line naming it: the test runs itself again as the process
//! to watch (the child takes the `LAMEDUCK_TEST_FATAL_CHILD` branch).

use std::process::Command;

const CHILD: &str = "LAMEDUCK_TEST_FATAL_CHILD";

#[test]
fn a_fatal_task_that_panics_ends_the_process_with_70_and_says_which() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "a_fatal_task_that_panics_ends_the_process_with_70_and_says_which",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(lameduck_drain::FATAL_EXIT), "{log}");
    assert!(
        log.contains("ERROR")
            && log.contains("background task accept loop of listener web panicked: injected; ending the process"),
        "{log}"
    );
}

/// Runs a runtime whose fatal task panics; never returns (the process ends).
fn child() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        lameduck_drain::spawn_fatal("accept loop of listener web", async {
            panic!("injected");
        });
        std::future::pending::<()>().await;
    });
}
