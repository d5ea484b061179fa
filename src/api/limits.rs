//! Message size limits of the gRPC server, and the status codes of requests that break
//! them or are not protobuf at all.
//!
//! tonic refuses such requests before any handler runs, with codes that blame the
//! server: OUT_OF_RANGE for a message over the decoding limit (`tonic::codec`'s
//! decoder) and INTERNAL for bytes that do not decode (`tonic-prost`'s codec, following
//! gRPC's own table). Both are the client's doing, so [`rewrite_decode_status`] (a
//! response map over the whole server) gives them RESOURCE_EXHAUSTED and
//! INVALID_ARGUMENT (grpc-go and grpc-java also say RESOURCE_EXHAUSTED for the size).
//! The refusal is a trailers-only response (the status in its headers), so only
//! headers are read and rewritten; the daemon's own OUT_OF_RANGE and INTERNAL (other
//! messages) pass unchanged.

use tonic::codegen::http;
use tonic::{Code, Status};

/// Largest request the server reads (tonic's default is 4 MiB): a few turns of
/// [`super::validate::MAX_TURN_BYTES`] each. Larger: RESOURCE_EXHAUSTED.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Largest reply the server sends (tonic's default: no limit). The largest real ones
/// are a generation's summary (at most 8192 tokens and their text) and a
/// `ListClusters` page (kept under [`super::paging::MAX_PAGE_BYTES`]).
pub const MAX_REPLY_BYTES: usize = 64 << 20;

/// What tonic's decoder says of a message over the limit (with OUT_OF_RANGE).
const TOO_LARGE: &str = "Error, decoded message length too large";
/// What prost says of bytes that are not the expected message (with INTERNAL).
const MALFORMED: &str = "failed to decode Protobuf message";

/// `response` with tonic's refusal of an oversized or malformed request given the code
/// that blames the client; any other response unchanged.
pub fn rewrite_decode_status<B>(mut response: http::Response<B>) -> http::Response<B> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let code = match status.code() {
        Code::OutOfRange if status.message().starts_with(TOO_LARGE) => Code::ResourceExhausted,
        Code::Internal if status.message().starts_with(MALFORMED) => Code::InvalidArgument,
        _ => return response,
    };
    let fixed = Status::new(code, status.message());
    if fixed.add_header(response.headers_mut()).is_ok() {
        response.extensions_mut().insert(fixed);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(status: Status) -> (Code, String) {
        let response = rewrite_decode_status(status.into_http::<()>());
        let s = Status::from_header_map(response.headers()).unwrap();
        (s.code(), s.message().to_owned())
    }

    #[test]
    fn only_decode_refusals_are_rewritten() {
        let too_large = format!("{TOO_LARGE}: found 20000000 bytes, the limit is: 16777216 bytes");
        assert_eq!(
            code_of(Status::out_of_range(too_large.clone())),
            (Code::ResourceExhausted, too_large)
        );
        let malformed = format!("{MALFORMED}: invalid wire type value: 7");
        assert_eq!(
            code_of(Status::internal(malformed.clone())),
            (Code::InvalidArgument, malformed)
        );
        // The daemon's own codes stay as they are.
        for s in [
            Status::out_of_range("turns: over the context limit"),
            Status::internal("internal error: engine failed"),
            Status::not_found("cluster \"x\" not found"),
        ] {
            let (code, message) = (s.code(), s.message().to_owned());
            assert_eq!(code_of(s), (code, message));
        }
        // A reply without a status in its headers (a normal one) is left alone.
        let ok = rewrite_decode_status(http::Response::new(()));
        assert!(ok.headers().is_empty());
    }
}
