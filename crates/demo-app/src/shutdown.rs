//! How the app stops, in its two modes, and the counts the drain waits on.
//!
//! Every connection task, WebSocket and request holds a [`Counted`] guard, so
//! the drain knows what is still open without keeping a list of tasks, and can
//! say at the timeout exactly what it cut. Every task also watches the
//! [`Stage`]: at `Draining` HTTP connections end gracefully and WebSockets say
//! goodbye; at `Cut` they drop their sockets at once.
//!
//! - naive: told to stop, the app cancels its Eureka registration (as a Spring
//!   app without graceful shutdown still does) and is gone;
//! - graceful: what Spring Boot's `server.shutdown=graceful` and Go's
//!   `Server.Shutdown` do. Readiness turns 503, the listener closes (new
//!   connections are refused), HTTP/1.1 responses carry `Connection: close`
//!   and idle keepalive connections close, HTTP/2 connections get GOAWAY,
//!   WebSockets get a 1001 Going Away close, in-flight requests finish. It does
//!   not wait for routers to notice that the instance is going: that is
//!   `lameduck run`'s job, in front of the app.

use std::{sync::Arc, time::Duration};

use lameduck_drain::format_duration;
use tokio::{net::TcpListener, sync::watch, time::Instant};

use crate::{eureka::Registration, Exit};

/// Where the app is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// Serving everything.
    Serving,
    /// Graceful shutdown begun: finishing what is in flight.
    Draining,
    /// Whatever is left is dropped now.
    Cut,
}

/// What is open right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Open {
    pub(crate) connections: usize,
    pub(crate) websockets: usize,
    pub(crate) requests: usize,
}

impl Open {
    fn idle(&self) -> bool {
        self.connections == 0 && self.websockets == 0
    }
}

/// The kinds of things counted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Connection,
    WebSocket,
    Request,
}

/// The stage and the counts, shared by every task.
#[derive(Debug)]
pub(crate) struct Life {
    stage: watch::Sender<Stage>,
    open: Arc<watch::Sender<Open>>,
}

impl Life {
    pub(crate) fn new() -> Life {
        Life {
            stage: watch::channel(Stage::Serving).0,
            open: Arc::new(watch::channel(Open::default()).0),
        }
    }

    /// True once a graceful shutdown has begun.
    pub(crate) fn draining(&self) -> bool {
        *self.stage.borrow() >= Stage::Draining
    }

    /// Follows the stage.
    pub(crate) fn stage(&self) -> watch::Receiver<Stage> {
        self.stage.subscribe()
    }

    fn set(&self, stage: Stage) {
        self.stage.send_replace(stage);
    }

    /// Counts one `kind` as open until the guard is dropped.
    pub(crate) fn count(&self, kind: Kind) -> Counted {
        self.open.send_modify(|o| *field(o, kind) += 1);
        Counted {
            open: Arc::clone(&self.open),
            kind,
        }
    }

    fn open(&self) -> Open {
        *self.open.borrow()
    }
}

fn field(open: &mut Open, kind: Kind) -> &mut usize {
    match kind {
        Kind::Connection => &mut open.connections,
        Kind::WebSocket => &mut open.websockets,
        Kind::Request => &mut open.requests,
    }
}

/// One open connection, WebSocket or request.
#[derive(Debug)]
pub(crate) struct Counted {
    open: Arc<watch::Sender<Open>>,
    kind: Kind,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let kind = self.kind;
        self.open.send_modify(|o| *field(o, kind) -= 1);
    }
}

/// Naive mode: cancel the registration (if any), drop everything, return.
pub(crate) async fn naive(life: &Life, registration: Option<Registration>) -> Exit {
    tracing::info!("stop requested: naive mode, exiting at once (in-flight requests are cut)");
    if let Some(r) = registration {
        let until = Instant::now() + r.timeout();
        r.end(until).await;
    }
    life.set(Stage::Cut);
    Exit::Naive
}

/// Graceful mode: the steps of the module doc, each logged with its timing,
/// never past `timeout` from now.
pub(crate) async fn graceful(
    life: &Life,
    listener: TcpListener,
    registration: Option<Registration>,
    timeout: Duration,
) -> Exit {
    let started = Instant::now();
    let deadline = started + timeout;
    let took = || format_duration(started.elapsed());
    tracing::info!(timeout = %format_duration(timeout), "stop requested: shutting down gracefully");
    life.set(Stage::Draining);
    drop(listener);
    let open = life.open();
    tracing::info!(
        took = %took(),
        connections = open.connections,
        requests = open.requests,
        websockets = open.websockets,
        "readiness 503; listener closed; idle connections closed, GOAWAY sent, \
         WebSockets sent 1001; finishing in-flight requests"
    );
    if let Some(r) = registration {
        r.end(deadline).await;
    }
    let mut watch = life.open.subscribe();
    let finished = tokio::time::timeout_at(deadline, watch.wait_for(Open::idle)).await;
    if finished.is_ok() {
        tracing::info!(took = %took(), "every request finished; exiting");
        return Exit::Drained;
    }
    let open = life.open();
    tracing::warn!(
        took = %took(),
        requests = open.requests,
        connections = open.connections,
        websockets = open.websockets,
        "shutdown timeout: cutting what is left"
    );
    life.set(Stage::Cut);
    Exit::TimedOut {
        requests: open.requests,
        connections: open.connections + open.websockets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_while_they_live() {
        let life = Life::new();
        let c = life.count(Kind::Connection);
        let r = life.count(Kind::Request);
        assert_eq!(
            life.open(),
            Open {
                connections: 1,
                websockets: 0,
                requests: 1
            }
        );
        assert!(!life.open().idle());
        drop(c);
        // A request alone is on a connection already counted: idle.
        assert!(life.open().idle());
        drop(r);
        assert_eq!(life.open(), Open::default());
    }

    #[tokio::test(start_paused = true)]
    async fn graceful_waits_for_what_is_open_then_cuts_at_the_timeout() {
        let life = Life::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws = life.count(Kind::WebSocket);
        let started = Instant::now();
        let exit = graceful(&life, listener, None, Duration::from_secs(5)).await;
        assert_eq!(
            exit,
            Exit::TimedOut {
                requests: 0,
                connections: 1
            }
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(*life.stage().borrow(), Stage::Cut);
        drop(ws);
    }

    #[tokio::test(start_paused = true)]
    async fn graceful_ends_when_the_last_connection_closes() {
        let life = Arc::new(Life::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let conn = life.count(Kind::Connection);
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(conn);
        });
        let started = Instant::now();
        let exit = graceful(&life, listener, None, Duration::from_secs(5)).await;
        assert_eq!(exit, Exit::Drained);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        closer.await.unwrap();
    }
}
