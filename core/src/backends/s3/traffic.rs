//! Bytes the backend sends to and receives from the object store: every
//! request goes through a [`CountingConnector`] (`object_store`'s own
//! requests and those of `copy.rs` and `patch.rs`), which adds each
//! request body's length to `sent` and each response body's bytes to
//! `received` as they arrive. Headers are not counted. The totals are what
//! [`Storage::traffic`](crate::storage::Storage::traffic) reports, so a
//! one-byte patch of a large object shows as the part it uploaded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http_body_util::BodyExt;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
};
use object_store::ClientOptions;

use crate::metrics::Traffic;

/// Running totals of one backend's request and response bodies.
#[derive(Debug, Default)]
pub(super) struct TrafficCounts {
    sent: AtomicU64,
    received: AtomicU64,
}

impl TrafficCounts {
    pub(super) fn snapshot(&self) -> Traffic {
        Traffic { sent: self.sent.load(Ordering::Relaxed), received: self.received.load(Ordering::Relaxed) }
    }
}

/// Wraps the clients another connector makes so they count bodies.
#[derive(Debug)]
pub(super) struct CountingConnector<C> {
    pub inner: C,
    pub counts: Arc<TrafficCounts>,
}

impl<C: HttpConnector> HttpConnector for CountingConnector<C> {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = self.inner.connect(options)?;
        Ok(HttpClient::new(CountingClient { inner, counts: self.counts.clone() }))
    }
}

#[derive(Debug)]
struct CountingClient {
    inner: HttpClient,
    counts: Arc<TrafficCounts>,
}

#[async_trait]
impl HttpService for CountingClient {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        // Counted when sent: a request that fails midway was (partly) sent too.
        self.counts.sent.fetch_add(req.body().content_length() as u64, Ordering::Relaxed);
        let response = self.inner.execute(req).await?;
        let counts = self.counts.clone();
        let (parts, body) = response.into_parts();
        let body = body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counts.received.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        });
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}
