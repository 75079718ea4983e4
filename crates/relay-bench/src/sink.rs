//! An in-process subscriber that records when each `webhook-id` arrived.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

#[derive(Clone)]
pub struct Sink {
    pub address: SocketAddr,
    arrivals: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
}

impl Sink {
    pub async fn start(delay: Duration) -> anyhow::Result<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let arrivals: Arc<Mutex<HashMap<String, (Instant, u32)>>> = Arc::default();
        let state = (Arc::clone(&arrivals), delay);
        let app = axum::Router::new().fallback(record).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Sink { address, arrivals })
    }

    /// First arrival time and number of copies per webhook-id.
    pub fn arrivals(&self) -> HashMap<String, (Instant, u32)> {
        self.arrivals.lock().map(|a| a.clone()).unwrap_or_default()
    }

    pub fn delivered(&self) -> usize {
        self.arrivals.lock().map(|a| a.len()).unwrap_or(0)
    }
}

type SinkState = (Arc<Mutex<HashMap<String, (Instant, u32)>>>, Duration);

async fn record(State((arrivals, delay)): State<SinkState>, headers: HeaderMap) -> StatusCode {
    let now = Instant::now();
    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok())
        && let Ok(mut arrivals) = arrivals.lock()
    {
        arrivals.entry(id.to_owned()).or_insert((now, 0)).1 += 1;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    StatusCode::OK
}
