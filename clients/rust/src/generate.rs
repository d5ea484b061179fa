//! [`GenerateStream`]: one generation as it happens — token deltas, then the summary.
//!
//! The stream is a [`Stream`] of [`GenerateEvent`]s. It ends after
//! [`GenerateEvent::Done`]; if the daemon goes away first, its last item is an error
//! ([`ClientError::IncompleteStream`] or [`ClientError::Disconnected`]), so a consumer
//! never mistakes a cut-off generation for a finished one. Dropping the stream cancels
//! the generation on the daemon.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::error::ClientError;
use crate::proto;
use crate::proto::generate_response::Event;

/// One event of a generation.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerateEvent {
    /// A generated token, with the text it completes (may be empty mid-character).
    Token(proto::TokenDelta),
    /// The generation ended; always the last event.
    Done(proto::GenerateSummary),
}

/// The events of one generation, from [`crate::Client::generate`].
///
/// ```no_run
/// # async fn example(client: semkv_client::Client) -> Result<(), semkv_client::ClientError> {
/// use semkv_client::{proto, GenerateEvent};
/// let request = proto::GenerateRequest { cluster_id: "notes".into(), ..Default::default() };
/// let mut stream = client.generate(request).await?;
/// while let Some(event) = stream.next_event().await {
///     match event? {
///         GenerateEvent::Token(t) => print!("{}", t.text),
///         GenerateEvent::Done(s) => println!("\n{:.1} tok/s", s.tokens_per_second),
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct GenerateStream {
    inner: tonic::Streaming<proto::GenerateResponse>,
    addr: String,
    /// The summary or an error was yielded: nothing follows.
    ended: bool,
}

impl std::fmt::Debug for GenerateStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateStream")
            .field("addr", &self.addr)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl GenerateStream {
    pub(crate) fn new(inner: tonic::Streaming<proto::GenerateResponse>, addr: String) -> Self {
        GenerateStream {
            inner,
            addr,
            ended: false,
        }
    }

    /// The next event; `None` after the summary (or after an error).
    pub async fn next_event(&mut self) -> Option<Result<GenerateEvent, ClientError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Reads the stream to its end, calling `on_token` with every token, and returns
    /// the summary.
    pub async fn finish(
        mut self,
        mut on_token: impl FnMut(&proto::TokenDelta),
    ) -> Result<proto::GenerateSummary, ClientError> {
        while let Some(event) = self.next_event().await {
            match event? {
                GenerateEvent::Token(t) => on_token(&t),
                GenerateEvent::Done(summary) => return Ok(summary),
            }
        }
        Err(ClientError::IncompleteStream { addr: self.addr })
    }
}

impl Stream for GenerateStream {
    type Item = Result<GenerateEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            let item = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            let event = match item {
                Some(Ok(msg)) => match msg.event {
                    Some(Event::Token(t)) => Ok(GenerateEvent::Token(t)),
                    Some(Event::Done(s)) => Ok(GenerateEvent::Done(s)),
                    // An empty message (a newer daemon's event this client does not
                    // know): skipped.
                    None => continue,
                },
                Some(Err(status)) => Err(ClientError::from_status(status, &self.addr)),
                None => Err(ClientError::IncompleteStream {
                    addr: self.addr.clone(),
                }),
            };
            self.ended = !matches!(event, Ok(GenerateEvent::Token(_)));
            return Poll::Ready(Some(event));
        }
    }
}
