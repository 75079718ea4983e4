//! What one received request came to, and the one mapping of it to an HTTP answer
//! (shared/DESIGN.md's contract) that every edge uses: the receiver Lambda and `relay dev`.

use crate::providers::{Answer, Rejection};

/// What the receive use case decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiveOutcome {
    /// The event is queued under `event_id`: 202.
    Accepted { event_id: String },
    /// A copy with the same delivery id was queued as `event_id`: 200, nothing queued.
    Duplicate { event_id: String },
    /// Another copy with the same delivery id is being accepted right now: 409, retry shortly.
    Busy,
    /// Refused: nothing queued, and the sender is told why.
    Refused(Refusal),
    /// A provider's challenge or URL check, answered without queuing anything.
    Challenge(Answer),
    /// `GET /healthz`.
    Healthy,
    /// A dependency failed: 503, nothing was accepted, the sender retries.
    Unavailable(Unavailable),
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path names no source at all: 404.
    NoSourcePath,
    /// No stored source has this name: 404.
    UnknownSource { name: String },
    /// Only POST (and GET for `token` sources) carries webhooks: 405.
    MethodNotAllowed,
    /// The body is over the receiver's limit: 413.
    TooLarge { bytes: usize, limit: usize },
    /// Verification or the carriable check refused it (400, 401, or 500 for a source the
    /// relay cannot verify with).
    Rejected(Rejection),
}

/// The dependency that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    Store,
    Queue,
    /// The body store, for a body too large to travel inline.
    Bodies,
}

/// An HTTP answer in neutral form: status, headers and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: value.to_string(),
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Self::json(status, &serde_json::json!({ "error": message }))
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// The answer as an `http` response of any body type built from text (lambda_http's and
    /// axum's). Every status and header the relay sends is valid; were one not, the answer is
    /// an empty 500 rather than a panic.
    pub fn into_http<B: From<String> + Default>(self) -> http::Response<B> {
        let mut builder = http::Response::builder().status(self.status);
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder.body(B::from(self.body)).unwrap_or_else(|_| {
            let mut fallback = http::Response::new(B::default());
            *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
    }
}

impl ReceiveOutcome {
    /// The status code the answer carries.
    pub fn status(&self) -> u16 {
        match self {
            Self::Accepted { .. } => 202,
            Self::Duplicate { .. } | Self::Healthy => 200,
            Self::Busy => 409,
            Self::Challenge(answer) => answer.status,
            Self::Unavailable(_) => 503,
            Self::Refused(refusal) => match refusal {
                Refusal::NoSourcePath | Refusal::UnknownSource { .. } => 404,
                Refusal::MethodNotAllowed => 405,
                Refusal::TooLarge { .. } => 413,
                Refusal::Rejected(rejection) => rejection.status,
            },
        }
    }

    /// The HTTP answer to the sender (shared/DESIGN.md's receiver contract).
    pub fn reply(&self) -> Reply {
        let status = self.status();
        match self {
            // Event ids are [a-z0-9_] only, so the answer needs no JSON encoder.
            Self::Accepted { event_id } => Reply {
                status,
                headers: vec![("content-type", "application/json".into())],
                body: format!("{{\"id\":\"{event_id}\"}}"),
            },
            Self::Duplicate { event_id } => Reply::json(
                status,
                &serde_json::json!({ "id": event_id, "duplicate": true }),
            ),
            Self::Busy => Reply::error(
                status,
                "this delivery id is being accepted right now; retry shortly",
            )
            .with_header("retry-after", "5"),
            Self::Challenge(answer) => Reply::json(status, &answer.body),
            Self::Healthy => Reply::json(status, &serde_json::json!({ "status": "ok" })),
            Self::Unavailable(Unavailable::Store) => Reply::error(
                status,
                "store unavailable; nothing was accepted, retry later",
            ),
            Self::Unavailable(Unavailable::Queue) => Reply::error(
                status,
                "queue unavailable; nothing was accepted, retry later",
            ),
            Self::Unavailable(Unavailable::Bodies) => Reply::error(
                status,
                "body store unavailable; nothing was accepted, retry later",
            ),
            Self::Refused(refusal) => match refusal {
                Refusal::NoSourcePath => {
                    Reply::error(status, "no such source: the path is /{source}")
                }
                Refusal::UnknownSource { name } => {
                    Reply::error(status, &format!("no such source: {name}"))
                }
                Refusal::MethodNotAllowed => {
                    Reply::error(status, "method not allowed: send webhooks with POST")
                        .with_header("allow", "POST")
                }
                Refusal::TooLarge { bytes, limit } => Reply::error(
                    status,
                    &format!("body of {bytes} bytes is over the limit of {limit} bytes"),
                ),
                Refusal::Rejected(rejection) => Reply::error(status, &rejection.message),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triple(outcome: ReceiveOutcome) -> (u16, Vec<(&'static str, String)>, String) {
        let reply = outcome.reply();
        (reply.status, reply.headers, reply.body)
    }

    fn json() -> Vec<(&'static str, String)> {
        vec![("content-type", "application/json".into())]
    }

    #[test]
    fn each_outcome_has_the_contract_answer() {
        let id = "01hx_a".to_owned();
        assert_eq!(
            triple(ReceiveOutcome::Accepted {
                event_id: id.clone()
            }),
            (202, json(), r#"{"id":"01hx_a"}"#.into())
        );
        let (status, headers, body) = triple(ReceiveOutcome::Duplicate { event_id: id });
        assert_eq!((status, headers), (200, json()));
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, serde_json::json!({"id": "01hx_a", "duplicate": true}));
        let (status, headers, _) = triple(ReceiveOutcome::Busy);
        assert_eq!(status, 409);
        assert!(headers.contains(&("retry-after", "5".into())));
        let (status, headers, body) = triple(ReceiveOutcome::Refused(Refusal::MethodNotAllowed));
        assert_eq!(status, 405);
        assert!(headers.contains(&("allow", "POST".into())), "{body}");
        assert_eq!(
            triple(ReceiveOutcome::Refused(Refusal::TooLarge {
                bytes: 11,
                limit: 10
            })),
            (
                413,
                json(),
                r#"{"error":"body of 11 bytes is over the limit of 10 bytes"}"#.into()
            )
        );
        assert_eq!(
            triple(ReceiveOutcome::Refused(Refusal::Rejected(
                Rejection::unauthorized("bad signature")
            ))),
            (401, json(), r#"{"error":"bad signature"}"#.into())
        );
        assert_eq!(
            triple(ReceiveOutcome::Unavailable(Unavailable::Queue)),
            (
                503,
                json(),
                r#"{"error":"queue unavailable; nothing was accepted, retry later"}"#.into()
            )
        );
        assert_eq!(
            triple(ReceiveOutcome::Healthy),
            (200, json(), r#"{"status":"ok"}"#.into())
        );
    }

    #[test]
    fn a_reply_becomes_an_http_response_with_its_headers() {
        let response: http::Response<String> = ReceiveOutcome::Busy.reply().into_http();
        assert_eq!(response.status(), 409);
        assert_eq!(response.headers()["retry-after"], "5");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(response.body().contains("retry shortly"));
    }
}
