//! `relay console`: server-rendered pages over either backend (the admin commands' backend,
//! chosen by the same flags), calling the same core use cases as the CLI. `relay dev` serves
//! the same console at `/console` on its own listener.
//!
//! Templates and assets are compiled into the binary; pages escape everything they show (the
//! template engine's autoescape), the Content-Security-Policy allows only the console's own
//! stylesheet and script, and every action is a POST checked by [`access::Access`].

mod access;
mod chart;
mod pages;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

use crate::args::{ConsoleArgs, Global};
use crate::backend::Backend;
use crate::dev::server::{self, ServerLimits};

pub use access::Access;

/// Every console URL starts with it, under `relay console` and `relay dev` alike.
pub const PREFIX: &str = "/console";
/// A form is small: ids, a time, a queue name.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// The relay dev listener's defaults: slow clients cannot hold the console's connections.
const LIMITS: ServerLimits = ServerLimits {
    header_timeout: Duration::from_secs(10),
    body_timeout: Duration::from_secs(30),
    idle_timeout: Duration::from_secs(60),
    max_connections: 64,
};

const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("sources.html", include_str!("templates/sources.html")),
    (
        "subscriptions.html",
        include_str!("templates/subscriptions.html"),
    ),
    ("events.html", include_str!("templates/events.html")),
    ("event.html", include_str!("templates/event.html")),
    ("recover.html", include_str!("templates/recover.html")),
    ("live.html", include_str!("templates/live.html")),
    ("result.html", include_str!("templates/result.html")),
    ("error.html", include_str!("templates/error.html")),
];

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// The console over one backend.
pub struct Console {
    backend: Backend,
    access: Access,
    templates: minijinja::Environment<'static>,
    body_timeout: Duration,
}

impl Console {
    pub fn new(backend: Backend, access: Access, body_timeout: Duration) -> anyhow::Result<Self> {
        let mut templates = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            templates
                .add_template(name, source)
                .with_context(|| format!("console template {name}"))?;
        }
        templates.add_global("csrf", access.csrf().to_owned());
        templates.add_global("prefix", PREFIX);
        Ok(Self {
            backend,
            access,
            templates,
            body_timeout,
        })
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Whether `path` is the console's (`console` is a reserved source name).
    pub fn serves(path: &str) -> bool {
        path.strip_prefix(PREFIX)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    pub async fn handle(&self, request: http::Request<Body>) -> Response {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().map(str::to_owned);
        let mut response = match self.access.admit(&parts.headers, &path, query.as_deref()) {
            access::Verdict::Admit => self.route(&parts, &path, query.as_deref(), body).await,
            access::Verdict::SetCookie { location } => {
                let mut response = redirect(&location);
                if let Some(cookie) = self.access.cookie(PREFIX)
                    && let Ok(value) = HeaderValue::from_str(&cookie)
                {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                }
                response
            }
            access::Verdict::Refuse { status, message } => self.error_page(status, &message),
        };
        secure(response.headers_mut());
        response
    }

    async fn route(
        &self,
        parts: &http::request::Parts,
        path: &str,
        query: Option<&str>,
        body: Body,
    ) -> Response {
        let Some(rest) = path.strip_prefix(PREFIX).filter(|_| Self::serves(path)) else {
            return self.error_page(404, &format!("no console page at {path}"));
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let params = pages::Params::from_query(query);
        if parts.method == http::Method::GET {
            let page = match segments.as_slice() {
                [] => pages::overview(self).await,
                ["sources"] => pages::sources(self).await,
                ["subscriptions"] => pages::subscriptions(self).await,
                ["events"] => pages::events(self, &params).await,
                ["events", id] => pages::event(self, id).await,
                ["events", id, "body"] => pages::event_body(self, id).await,
                ["recover"] => pages::recover(self, &params).await,
                ["live"] => pages::live(self).await,
                ["live.json"] => pages::live_json(self).await,
                ["assets", "console.css"] => Ok(asset("text/css; charset=utf-8", STYLESHEET)),
                ["assets", "console.js"] => Ok(asset("text/javascript; charset=utf-8", SCRIPT)),
                _ => Err(pages::PageError::not_found(path)),
            };
            return self.answer(page);
        }
        if parts.method != http::Method::POST {
            return self.error_page(405, "the console answers GET, and POST for actions");
        }
        let form = match self.read_form(body).await {
            Ok(form) => form,
            Err((status, message)) => return self.error_page(status, &message),
        };
        if let Err(message) = self
            .access
            .check_action(&parts.headers, form.get(access::CSRF_FIELD))
        {
            return self.error_page(403, &message);
        }
        let page = match segments.as_slice() {
            ["subscriptions", id, "enable"] => pages::set_enabled(self, id, true).await,
            ["subscriptions", id, "disable"] => pages::set_enabled(self, id, false).await,
            ["subscriptions", id, "rotate"] => pages::rotate(self, id, &form).await,
            ["events", id, "replay"] => pages::replay(self, id, &form).await,
            ["recover"] => pages::recover_send(self, &form).await,
            ["redrive"] => pages::redrive(self, &form).await,
            _ => Err(pages::PageError::not_found(path)),
        };
        self.answer(page)
    }

    async fn read_form(&self, body: Body) -> Result<pages::Params, (u16, String)> {
        let read = tokio::time::timeout(
            self.body_timeout,
            axum::body::to_bytes(body, MAX_FORM_BYTES),
        );
        let bytes: Bytes = match read.await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return Err((413, format!("a form is at most {MAX_FORM_BYTES} bytes"))),
            Err(_) => {
                return Err((
                    408,
                    format!("form not received within {} s", self.body_timeout.as_secs()),
                ));
            }
        };
        Ok(pages::Params::from_form(&bytes))
    }

    fn answer(&self, page: Result<pages::Reply, pages::PageError>) -> Response {
        match page {
            Ok(pages::Reply::Page { template, context }) => self.render(200, template, &context),
            Ok(pages::Reply::Response(response)) => response,
            Err(error) => self.error_page(error.status, &error.message),
        }
    }

    fn render(&self, status: u16, template: &str, context: &Value) -> Response {
        let rendered = self
            .templates
            .get_template(template)
            .and_then(|t| t.render(context));
        match rendered {
            Ok(html) => html_response(status, html),
            Err(error) => {
                tracing::error!(template, error = %error, "console template failed");
                html_response(500, format!("internal error rendering {template}"))
            }
        }
    }

    fn error_page(&self, status: u16, message: &str) -> Response {
        self.render(
            status,
            "error.html",
            &serde_json::json!({ "status": status, "message": message }),
        )
    }
}

fn html_response(status: u16, html: String) -> Response {
    let mut response = Response::new(Body::from(html));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Pages show live state and, once, a rotated secret: never cached.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, text: &'static str) -> pages::Reply {
    let mut response = Response::new(Body::from(text));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    pages::Reply::Response(response)
}

pub(crate) fn redirect(location: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The headers every console answer carries.
fn secure(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not no-referrer: under it a browser sends `Origin: null` with a form's POST, and the
    // action's Origin check needs the real one. Other sites get no referrer either way.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// The console as a handler of the dev listener's server.
#[derive(Clone)]
pub struct ConsoleHandler(pub Arc<Console>);

impl server::Handler for ConsoleHandler {
    async fn handle(&self, request: http::Request<hyper::body::Incoming>) -> Response {
        // The console's own listener: its root leads to the console, the token kept.
        if request.uri().path() == "/" {
            let query = request
                .uri()
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let mut response = redirect(&format!("{PREFIX}{query}"));
            secure(response.headers_mut());
            return response;
        }
        self.0.handle(request.map(Body::new)).await
    }
}

/// `relay console`: the console over the backend the global flags name.
pub async fn run(global: &Global, args: ConsoleArgs) -> anyhow::Result<()> {
    let backend = Backend::open(global, false).await?;
    let access = Access::for_listen(args.listen)?;
    let console = Console::new(backend, access, LIMITS.body_timeout)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    crate::output::print_line(&format!(
        "relay console on {} ({})",
        console.access.start_url(address, PREFIX),
        console.access.start_note()
    ));
    let limits = ServerLimits {
        max_connections: server::fit_connection_limit(LIMITS.max_connections)?,
        ..LIMITS
    };
    server::serve(
        listener,
        ConsoleHandler(Arc::new(console)),
        limits,
        crate::dev::shutdown_signal(),
    )
    .await
}
