//! The JSON document of an event body, whichever content type the sender chose. A JSON body is
//! its own document; a form body (`application/x-www-form-urlencoded`) carries it URL-encoded in
//! its `payload` field: GitHub's `form` content type, Slack's interactivity. Providers type
//! events from this document, and whatever reads an event's JSON reads it through here, so an
//! event shows the same document in either content type. The body itself is never rewritten:
//! subscribers receive it byte for byte, with the content type the sender gave it.

use serde::de::IgnoredAny;

use super::shared::{FORM_MEDIA_TYPE, form_pairs, media_type_is, object_string_field};

/// The form field that carries a form body's JSON document.
pub const PAYLOAD_FIELD: &str = "payload";

/// What an event body holds, read by its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDocument<'a> {
    /// A JSON body (`application/json`, `text/json`, `…+json`): the body, checked to be JSON.
    Json(&'a str),
    /// A form body with a `payload` field: the field's value, URL-decoded and checked to be JSON.
    FormPayload(String),
    /// A form body without a `payload` field: its fields, decoded (Slack's slash commands).
    Form(Vec<(String, String)>),
    /// Any other content type, or none: nothing in the body is read.
    Opaque,
}

impl EventDocument<'_> {
    /// The JSON text of a JSON body or of a form's `payload`.
    pub fn json(&self) -> Option<&str> {
        match self {
            EventDocument::Json(text) => Some(text),
            EventDocument::FormPayload(text) => Some(text),
            EventDocument::Form(_) | EventDocument::Opaque => None,
        }
    }

    /// The top-level string field `name` of the JSON document, read without building a tree;
    /// `None` when there is no document, no such field, or the field is no string. A document
    /// that is not an object is refused, naming where it came from (`body`, or the form field).
    pub fn string_field(&self, name: &str) -> Result<Option<String>, String> {
        let Some(json) = self.json() else {
            return Ok(None);
        };
        object_string_field(json.as_bytes(), name)
            .map_err(|e| format!("{} is not a JSON object: {e}", self.origin()))
    }

    fn origin(&self) -> &'static str {
        match self {
            EventDocument::FormPayload(_) => "the form field payload",
            _ => "body",
        }
    }
}

/// True for a JSON media type: `application/json`, `text/json` or a `+json` suffix
/// (`application/vnd.github+json`); parameters and case ignored.
fn is_json_media_type(content_type: Option<&str>) -> bool {
    let Some(essence) = content_type.and_then(|ct| ct.split(';').next()) else {
        return false;
    };
    let essence = essence.trim().to_ascii_lowercase();
    essence
        .split_once('/')
        .is_some_and(|(_, subtype)| subtype == "json" || subtype.ends_with("+json"))
}

/// Reads `body` as its `content_type` says: the JSON document of a JSON body or of a form's
/// `payload` field, the fields of another form, or nothing. Refused (the message says which):
/// a JSON body that is not JSON, a `payload` field that is not JSON. A provider that accepts a
/// request without a content type passes the one it assumes.
pub fn event_document<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<EventDocument<'a>, String> {
    if is_json_media_type(content_type) {
        let text =
            std::str::from_utf8(body).map_err(|e| format!("body is not JSON: not UTF-8 ({e})"))?;
        check_json(text).map_err(|e| format!("body is not JSON: {e}"))?;
        return Ok(EventDocument::Json(text));
    }
    if !media_type_is(content_type, FORM_MEDIA_TYPE) {
        return Ok(EventDocument::Opaque);
    }
    let mut pairs = form_pairs(body);
    // The first `payload` is the document (as `form_field` reads fields).
    let Some(at) = pairs.iter().position(|(name, _)| name == PAYLOAD_FIELD) else {
        return Ok(EventDocument::Form(pairs));
    };
    let payload = pairs.swap_remove(at).1;
    check_json(&payload).map_err(|e| format!("the form field {PAYLOAD_FIELD} is not JSON: {e}"))?;
    Ok(EventDocument::FormPayload(payload))
}

fn check_json(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<IgnoredAny>(text).map(|_| ())
}

/// The form body a sender such as GitHub (`form` content type) sends for the JSON `json`.
#[cfg(test)]
pub(crate) fn form_of(json: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(PAYLOAD_FIELD, json)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &str = FORM_MEDIA_TYPE;

    #[test]
    fn json_body_and_form_payload_give_the_same_document() {
        let json = r#"{"action":"opened","issue":{"title":"a+b & c=d %41 ü"},"n":1}"#;
        let form = form_of(json);
        assert!(form.starts_with("payload=%7B%22action%22"), "{form}");
        let from_json = event_document(Some("application/json"), json.as_bytes()).unwrap();
        let from_form = event_document(Some(FORM), form.as_bytes()).unwrap();
        assert_eq!(from_json, EventDocument::Json(json));
        assert_eq!(from_form, EventDocument::FormPayload(json.to_owned()));
        assert_eq!(from_json.json(), from_form.json());
        for document in [&from_json, &from_form] {
            assert_eq!(
                document.string_field("action").unwrap().as_deref(),
                Some("opened")
            );
            assert_eq!(document.string_field("n").unwrap(), None);
            assert_eq!(document.string_field("absent").unwrap(), None);
        }
        // `+` is a space in a form, and parameters of the media type do not matter.
        let spaced = event_document(
            Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
            br#"payload={"action":"a+b"}&other=1"#,
        )
        .unwrap();
        assert_eq!(
            spaced.string_field("action").unwrap().as_deref(),
            Some("a b")
        );
    }

    #[test]
    fn json_media_types() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "text/json",
            "application/vnd.github+json",
            " application/json ",
        ] {
            assert!(is_json_media_type(Some(json)), "{json}");
        }
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonp",
            "json",
            "",
        ] {
            assert!(!is_json_media_type(Some(other)), "{other}");
        }
        assert!(!is_json_media_type(None));
    }

    #[test]
    fn forms_without_payload_keep_their_fields_and_other_types_are_not_read() {
        let form = event_document(Some(FORM), b"command=%2Fdeploy&text=now").unwrap();
        assert_eq!(
            form,
            EventDocument::Form(vec![
                ("command".into(), "/deploy".into()),
                ("text".into(), "now".into())
            ])
        );
        assert_eq!(form.json(), None);
        assert_eq!(form.string_field("command").unwrap(), None);
        for content_type in [None, Some("text/plain"), Some("application/octet-stream")] {
            let document = event_document(content_type, b"{\"action\":\"x\"}").unwrap();
            assert_eq!(document, EventDocument::Opaque);
            assert_eq!(document.string_field("action").unwrap(), None);
        }
        // The first payload field is the document.
        let twice = event_document(Some(FORM), b"payload=%7B%7D&payload=nope").unwrap();
        assert_eq!(twice, EventDocument::FormPayload("{}".into()));
    }

    #[test]
    fn broken_documents_say_which() {
        let err = event_document(Some(FORM), b"payload=not-json").unwrap_err();
        assert!(
            err.starts_with("the form field payload is not JSON: "),
            "{err}"
        );
        let err = event_document(Some(FORM), b"payload=").unwrap_err();
        assert!(
            err.starts_with("the form field payload is not JSON: "),
            "{err}"
        );
        let err = event_document(Some("application/json"), b"{\"a\":").unwrap_err();
        assert!(err.starts_with("body is not JSON: "), "{err}");
        let err = event_document(Some("application/json"), b"\xff").unwrap_err();
        assert!(err.starts_with("body is not JSON: not UTF-8"), "{err}");
        let err = event_document(Some("application/json"), b"{} {}").unwrap_err();
        assert!(err.starts_with("body is not JSON: "), "{err}");

        let array = event_document(Some(FORM), b"payload=%5B1%5D").unwrap();
        let err = array.string_field("action").unwrap_err();
        assert!(
            err.starts_with("the form field payload is not a JSON object: "),
            "{err}"
        );
        let array = event_document(Some("application/json"), b"[1]").unwrap();
        let err = array.string_field("action").unwrap_err();
        assert!(err.starts_with("body is not a JSON object: "), "{err}");
    }
}
