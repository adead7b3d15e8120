//! A request body read from the client connection while the upstream consumes
//! it: the connection task decodes frames and sends them through a channel of
//! one, so at most one frame waits in memory (backpressure reaches the client
//! through TCP).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

use crate::body::BoxError;

pub type Sender = mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

/// The receiving end, given to the upstream as the request's body.
#[derive(Debug)]
pub struct RequestBody {
    rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    length: Option<u64>,
}

impl RequestBody {
    /// A body of `length` bytes (`None`: chunked) and the sender that fills it.
    pub fn channel(length: Option<u64>) -> (Sender, RequestBody) {
        let (tx, rx) = mpsc::channel(1);
        (tx, RequestBody { rx, length })
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.length
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
