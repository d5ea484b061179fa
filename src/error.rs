//! The errors a request can end in, independent of gRPC (the API maps them to status
//! codes in one place: `api::status`).

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ServiceError {
    /// A request field is invalid; `field` is its path (e.g. `turns[2].text`).
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// The cluster does not exist.
    #[error("cluster {0:?} not found")]
    NotFound(String),
    /// A cluster with this id exists already.
    #[error("cluster {0:?} already exists")]
    AlreadyExists(String),
    /// The daemon is at capacity (or shutting down); retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The request would take a cluster past a limit (its context length); `field`
    /// names what to change.
    #[error("{field}: {message}")]
    OutOfRange { field: String, message: String },
    /// The store refused a write: its budget (`--max-store-bytes`) or the disk is full.
    /// Reads and deletes still work; retrying after space is freed succeeds.
    #[error("store full: {0}")]
    ResourceExhausted(String),
    /// Stored data that cannot be recovered (e.g. a cluster's token log is damaged).
    #[error("data loss: {0}")]
    DataLoss(String),
    /// A bug or an engine failure; details are logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// An [`ServiceError::InvalidArgument`] for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<crate::store::StoreError> for ServiceError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        if e.is_full() {
            return Self::ResourceExhausted(e.to_string());
        }
        match e {
            StoreError::Exists(id) => Self::AlreadyExists(id),
            StoreError::NotFound(id) => Self::NotFound(id),
            StoreError::Corrupt { .. } => Self::DataLoss(e.to_string()),
            StoreError::Sled(_)
            | StoreError::Io(_)
            | StoreError::Full(_)
            | StoreError::Unreadable { .. }
            | StoreError::RolledBack { .. }
            | StoreError::ModelMismatch { .. } => Self::Internal(e.to_string()),
        }
    }
}
