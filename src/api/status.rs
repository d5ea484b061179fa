//! [`ServiceError`] to gRPC status codes, in one place.

use tonic::{Code, Status};

use crate::error::ServiceError;

/// The status a client receives for `error`.
pub fn to_status(error: ServiceError) -> Status {
    let code = match &error {
        ServiceError::InvalidArgument { .. } => Code::InvalidArgument,
        ServiceError::NotFound(_) => Code::NotFound,
        ServiceError::AlreadyExists(_) => Code::AlreadyExists,
        ServiceError::Unavailable(_) => Code::Unavailable,
        ServiceError::ResourceExhausted(_) => Code::ResourceExhausted,
        ServiceError::OutOfRange { .. } => Code::OutOfRange,
        ServiceError::DataLoss(_) => Code::DataLoss,
        ServiceError::Internal(_) => Code::Internal,
    };
    if code == Code::Internal || code == Code::DataLoss {
        tracing::error!(error = %error, "request failed");
    }
    Status::new(code, error.to_string())
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        to_status(e)
    }
}
