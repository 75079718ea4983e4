//! The receiver Lambda's adapter: a function URL request in, the core `Receiver` in the middle,
//! a function URL response out.

use bytes::Bytes;
use lambda_http::{Body, Request, RequestExt, Response};
use relay_core::providers::InboundRequest;
use relay_core::receive::Receiver;

/// Converts the request (bodies arriving base64-encoded are already decoded by lambda_http, so
/// verification sees the provider's exact bytes) and answers with the core's reply.
pub async fn handle(
    receiver: &Receiver,
    request: Request,
) -> Result<Response<Body>, lambda_http::Error> {
    let path = request.raw_http_path().to_owned();
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    let inbound = InboundRequest {
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    Ok(receiver.handle(inbound).await.reply().into_http())
}
