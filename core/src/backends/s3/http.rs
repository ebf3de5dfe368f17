//! The HTTP client of plain `http://` endpoints: hyper's pooled HTTP/1.1
//! client over TCP connections that acknowledge every segment at once.
//!
//! Why: a server that writes a response's headers and its body in two
//! writes without `TCP_NODELAY` (Garage 2.5 does) holds the body back until
//! the headers are acknowledged (Nagle), and Linux delays that
//! acknowledgement by up to 40 ms. Every small request then takes 40 ms or
//! more: 4 KiB gets ran at 24 per second. Asking for quick acknowledgements
//! (`TCP_QUICKACK`) releases the body at once, so the same get takes about
//! a millisecond. Linux leaves quick-acknowledgement mode as it goes (every
//! request sent re-arms the delay), hence the flag is set again after every
//! write and before every read. `https://` endpoints keep `object_store`'s own client
//! (TLS, proxies).

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt;
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector as TcpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    HttpResponse, HttpResponseBody, HttpService,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::settings::S3Settings;

/// Makes [`QuickAckClient`]s; given to `object_store` for `http://` endpoints.
#[derive(Debug, Clone)]
pub(super) struct QuickAckConnector {
    /// Bound on a request until its response headers arrive.
    pub timeout: Duration,
    /// Bound on opening a connection.
    pub connect_timeout: Duration,
}

impl QuickAckConnector {
    /// The connector for the configured endpoint when it is plain
    /// `http://`; `None` for `https://` and AWS (`object_store`'s client).
    pub(super) fn for_endpoint(settings: &S3Settings) -> Option<Self> {
        let endpoint = settings.endpoint.as_deref()?;
        endpoint.starts_with("http://").then(|| QuickAckConnector {
            timeout: Duration::from_millis(settings.timeout_ms),
            connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
        })
    }
}

impl HttpConnector for QuickAckConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let mut tcp = TcpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(self.connect_timeout));
        tcp.set_keepalive(Some(Duration::from_secs(15)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(QuickAckTcp { tcp });
        Ok(HttpClient::new(QuickAckClient { client, timeout: self.timeout }))
    }
}

/// A pooled HTTP/1.1 client over [`QuickAck`] connections.
#[derive(Debug)]
struct QuickAckClient {
    client: Client<QuickAckTcp, HttpRequestBody>,
    timeout: Duration,
}

#[async_trait]
impl HttpService for QuickAckClient {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let response = match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                let kind = if e.is_connect() { HttpErrorKind::Connect } else { HttpErrorKind::Request };
                return Err(HttpError::new(kind, e));
            }
            Err(elapsed) => return Err(HttpError::new(HttpErrorKind::Timeout, elapsed)),
        };
        let (parts, body) = response.into_parts();
        let body = body.map_err(|e| {
            let kind = if e.is_incomplete_message() || e.is_closed() {
                HttpErrorKind::Interrupted
            } else {
                HttpErrorKind::Decode
            };
            HttpError::new(kind, e)
        });
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}

/// hyper's TCP connector (name resolution, connect timeout, `TCP_NODELAY`),
/// its connections wrapped in [`QuickAck`].
#[derive(Debug, Clone)]
struct QuickAckTcp {
    tcp: TcpConnector,
}

impl tower_service::Service<Uri> for QuickAckTcp {
    type Response = TokioIo<QuickAck>;
    type Error = <TcpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.tcp.call(uri);
        Box::pin(async move { Ok(TokioIo::new(QuickAck(connecting.await?.into_inner()))) })
    }
}

/// A TCP stream that asks for quick acknowledgements before every read and
/// after every write (sending re-arms the delayed acknowledgement of a
/// request-response exchange).
#[derive(Debug)]
struct QuickAck(TcpStream);

impl QuickAck {
    fn quick_ack(&self) {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a properly sized option
        // value. A failure only costs the delayed acknowledgement back.
        unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.quick_ack();
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.0).poll_write(cx, buf);
        self.quick_ack();
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.0).poll_write_vectored(cx, bufs);
        self.quick_ack();
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}
