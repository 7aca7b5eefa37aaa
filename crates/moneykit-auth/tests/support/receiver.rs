//! A webhook endpoint for tests: records every request on 127.0.0.1 and answers with a
//! planned status.
//!
//! It binds port 0 and keeps that listener, and it runs on a thread and runtime of its
//! own: a test that blocks its own runtime (a CLI call, a current-thread runtime busy
//! elsewhere) never holds up a server's deliveries. It stops when the runtime of the test
//! that started it shuts down, as a task spawned there would.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub signature: String,
    pub token: String,
    pub attempt: u32,
    pub content_type: String,
    pub body: Bytes,
    /// The status the receiver answered with.
    pub status: u16,
}

/// A webhook endpoint on 127.0.0.1 that records what it gets and answers with the next
/// planned status (200 once the plan is used up, or always 500 while `failing`).
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    plan: Arc<Mutex<VecDeque<u16>>>,
    pub failing: Arc<AtomicBool>,
}

impl Receiver {
    pub async fn start(plan: &[u16]) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hooks/moneykit", listener.local_addr().unwrap());
        let receiver = Self {
            url,
            got: Arc::default(),
            plan: Arc::new(Mutex::new(plan.iter().copied().collect())),
            failing: Arc::default(),
        };
        let state = receiver.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                // Recorded (under the lock, so in the order answered) before answering.
                let mut got = state.got.lock().unwrap();
                let status = if state.failing.load(Ordering::SeqCst) {
                    500
                } else {
                    state.plan.lock().unwrap().pop_front().unwrap_or(200)
                };
                got.push(Delivery {
                    signature: header("moneykit-signature"),
                    token: header("moneykit-delivery-token"),
                    attempt: header("moneykit-delivery-attempt").parse().unwrap_or(0),
                    content_type: header("content-type"),
                    body,
                    status,
                });
                StatusCode::from_u16(status).unwrap()
            }
        };
        let router = axum::Router::new().route("/hooks/moneykit", axum::routing::post(handler));
        super::serve_in_background("webhook-receiver", listener, router);
        receiver
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived (or fails after `limit`).
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + limit;
        while self.got.lock().unwrap().len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} deliveries within {limit:?}",
                self.deliveries().len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.deliveries()
    }
}
