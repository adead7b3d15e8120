//! Body types: request and response bodies are streamed through, never
//! buffered whole, behind one boxed type so that bodies from clients, from
//! servers and from a proxy's own error pages mix freely. A client's request
//! body goes on through [`watch`], which holds it to a size limit (the proxy's
//! `max_body_bytes`) and an idle timeout, and tells a client's failure from a
//! server's.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};

/// Any error a body may carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type on both sides of the proxy.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body that is all here already.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with nothing in it.
pub fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// What became of a client's request body on its way upstream: whether it
/// went over `max_body_bytes`, or failed (the client left, or sent a broken
/// chunked coding). The proxy answers 413 for the first, and never counts
/// either against the upstream endpoint.
#[derive(Debug, Default)]
pub struct BodyWatch {
    over_limit: AtomicBool,
    idle: AtomicBool,
    failed: AtomicBool,
    /// The upstream's response head came: from then on a quiet body is the
    /// protocol's business (a gRPC client stream), not a stall.
    answered: AtomicBool,
}

impl BodyWatch {
    /// The body went over the limit (and was cut there).
    pub fn over_limit(&self) -> bool {
        self.over_limit.load(Ordering::Relaxed)
    }

    /// The upstream answered: the body's idle timer stops.
    pub fn mark_answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    /// The client stopped sending the body for longer than `body_idle_timeout`.
    pub fn idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    /// The body could not be read whole from the client, over the limit included.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The error a body over the limit ends with.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than max_body_bytes ({0} bytes)")]
pub struct TooLarge(pub u64);

/// The error a body ends with when the client stops sending it.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled for longer than body_idle_timeout")]
pub struct Idle;

/// Wraps a client's request body: counts its data against `max`, ends it
/// with [`Idle`] when the client sends nothing for `idle`, and records in the
/// returned [`BodyWatch`] whether it went over, stalled or failed. The idle
/// timer runs only until the upstream answers ([`BodyWatch::mark_answered`]). One check
/// for every path: HTTP/1 with a length or chunked, HTTP/2 with or without
/// `content-length`.
pub fn watch(body: Body, max: Option<u64>, idle: Duration) -> (Body, Arc<BodyWatch>) {
    let watch = Arc::new(BodyWatch::default());
    let watched = Watched {
        inner: body,
        seen: 0,
        max,
        idle,
        waiting: None,
        ended: false,
        watch: Arc::clone(&watch),
    };
    (boxed(watched), watch)
}

struct Watched {
    inner: Body,
    seen: u64,
    max: Option<u64>,
    idle: Duration,
    /// Armed while the body waits for the client (its last poll was
    /// `Pending`); the time the upstream takes to ask again is not counted.
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    ended: bool,
    watch: Arc<BodyWatch>,
}

impl Watched {
    /// Ends the body as failed: `idle` for a stall, `over` for the limit.
    fn end(&mut self, idle: bool, over: bool) {
        self.ended = true;
        self.waiting = None;
        self.watch.idle.fetch_or(idle, Ordering::Relaxed);
        self.watch.over_limit.fetch_or(over, Ordering::Relaxed);
        self.watch.failed.store(true, Ordering::Relaxed);
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.waiting = None;
                self.seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if let Some(max) = self.max.filter(|m| self.seen > *m) {
                    self.end(false, true);
                    return Poll::Ready(Some(Err(TooLarge(max).into())));
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let idle = e.downcast_ref::<Idle>().is_some();
                self.end(idle, false);
            }
            Poll::Ready(None) => {
                self.ended = true;
                self.waiting = None;
            }
            Poll::Pending if self.watch.answered.load(Ordering::Relaxed) => {
                self.waiting = None;
            }
            Poll::Pending => {
                let idle = self.idle;
                let waiting = self
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if waiting.as_mut().poll(cx).is_ready() {
                    self.end(true, false);
                    return Poll::Ready(Some(Err(Idle.into())));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body whose next frame never comes.
    struct Never;

    impl http_body::Body for Never {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_body_stalls_until_the_upstream_answers_then_may_wait() {
        let idle = Duration::from_secs(1);
        let (mut body, watch) = super::watch(boxed(Never), None, idle);
        let frame = tokio::time::timeout(idle * 5, body.frame()).await;
        assert!(
            matches!(frame, Ok(Some(Err(_)))),
            "a stall before the answer"
        );
        assert!(watch.idle() && watch.failed());

        let (mut body, watch) = super::watch(boxed(Never), None, idle);
        watch.mark_answered();
        let frame = tokio::time::timeout(idle * 5, body.frame()).await;
        assert!(frame.is_err(), "still waiting after the answer");
        assert!(!watch.failed());
    }
}
