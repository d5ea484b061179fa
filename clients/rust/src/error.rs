//! [`ClientError`]: why a call to `semkvd` failed.
//!
//! Failures on this side of the connection (no daemon at the address, a connection
//! lost mid-call, a request timeout) have their own variants and carry the address;
//! everything the daemon itself answered is [`ClientError::Status`], with the gRPC
//! code it sent (`NOT_FOUND` for an unknown cluster, `ALREADY_EXISTS`,
//! `INVALID_ARGUMENT`, `UNAVAILABLE` when its queue is full, ...).

use tonic::Code;

/// Why a call to `semkvd` failed.
///
/// ```
/// use semkv_client::{ClientError, Code};
/// let e = ClientError::Status { code: Code::NotFound, message: "no cluster x".into() };
/// assert_eq!(e.code(), Some(Code::NotFound));
/// assert!(!e.is_unreachable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address is not a valid URI.
    #[error("invalid address {addr}: {message}")]
    InvalidAddress {
        /// The address, as normalised by [`crate::normalize_addr`].
        addr: String,
        /// What is wrong with it.
        message: String,
    },
    /// No connection could be made (nothing listens there, or it did not answer in
    /// time).
    #[error("cannot connect to semkvd at {addr}: {message}")]
    Connect {
        /// The daemon's address.
        addr: String,
        /// The transport error and its causes, on one line.
        message: String,
    },
    /// The connection failed or was lost during a call (the daemon stopped,
    /// restarted, or the network broke).
    #[error("connection to semkvd at {addr} failed or was lost: {message}")]
    Disconnected {
        /// The daemon's address.
        addr: String,
        /// The transport error and its causes, on one line.
        message: String,
    },
    /// The call was cancelled on this side before the daemon answered: in practice its
    /// connection closed while it was in flight (the daemon was killed or restarted).
    #[error("a call to semkvd at {addr} was cancelled: {message}")]
    Cancelled {
        /// The daemon's address.
        addr: String,
        /// The status message tonic gave.
        message: String,
    },
    /// The call took longer than [`crate::ConnectOptions::request_timeout`].
    #[error("semkvd at {addr} did not answer in time")]
    Timeout {
        /// The daemon's address.
        addr: String,
    },
    /// A generation stream ended without its summary (the daemon went away while
    /// generating).
    #[error("the generation stream from semkvd at {addr} ended without a summary")]
    IncompleteStream {
        /// The daemon's address.
        addr: String,
    },
    /// The daemon answered with an error status.
    #[error("semkvd answered {code:?}: {message}")]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The daemon's message.
        message: String,
    },
}

impl ClientError {
    /// The gRPC code the daemon answered with, for [`ClientError::Status`].
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the daemon could not be reached or was lost: no answer from it
    /// exists (every variant but [`ClientError::Status`] and
    /// [`ClientError::Timeout`]).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::InvalidAddress { .. }
                | ClientError::Connect { .. }
                | ClientError::Disconnected { .. }
                | ClientError::Cancelled { .. }
                | ClientError::IncompleteStream { .. }
        )
    }

    /// True when the daemon refused the call because it is overloaded (its queue is
    /// full: `UNAVAILABLE` or `RESOURCE_EXHAUSTED`). The request was not admitted, so
    /// trying again later is safe.
    pub fn is_busy(&self) -> bool {
        matches!(
            self.code(),
            Some(Code::Unavailable | Code::ResourceExhausted)
        )
    }

    /// Maps a status returned by a call to the daemon at `addr`.
    ///
    /// A status that tonic produced on this side carries the transport error as its
    /// source: a timeout becomes [`ClientError::Timeout`], another cancellation
    /// [`ClientError::Cancelled`], anything else [`ClientError::Disconnected`]. A
    /// status the daemon sent becomes [`ClientError::Status`].
    pub(crate) fn from_status(status: tonic::Status, addr: &str) -> Self {
        let local = std::error::Error::source(&status).is_some();
        if !local {
            return ClientError::Status {
                code: status.code(),
                message: status.message().to_owned(),
            };
        }
        let addr = addr.to_owned();
        if has_source::<tonic::TimeoutExpired>(&status) {
            ClientError::Timeout { addr }
        } else if status.code() == Code::Cancelled {
            ClientError::Cancelled {
                addr,
                message: status.message().to_owned(),
            }
        } else {
            ClientError::Disconnected {
                addr,
                message: error_chain(&status),
            }
        }
    }
}

/// Whether `e` or one of its sources is an `E`.
fn has_source<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<E>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// An error and its sources as one line, leaving out repeated messages.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_statuses_keep_their_code_and_message() {
        let e = ClientError::from_status(tonic::Status::not_found("cluster x"), "http://h:1");
        assert_eq!(
            e,
            ClientError::Status {
                code: Code::NotFound,
                message: "cluster x".into()
            }
        );
        assert!(!e.is_busy() && !e.is_unreachable());
        let busy = ClientError::from_status(tonic::Status::unavailable("queue full"), "a");
        assert!(busy.is_busy());
    }

    #[test]
    fn local_statuses_become_transport_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let lost = tonic::Status::from_error(Box::new(io));
        let e = ClientError::from_status(lost, "http://h:1");
        assert!(
            matches!(&e, ClientError::Disconnected { addr, message } if addr == "http://h:1" && message.contains("reset")),
            "{e:?}"
        );
        assert!(e.is_unreachable());
        let timeout = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(
            ClientError::from_status(timeout, "a"),
            ClientError::Timeout { addr: "a".into() }
        );
    }
}
