//! Requests `object_store` does not make, signed by its SigV4 authorizer and
//! sent by the same kind of client as every other request of the backend:
//! metadata-only updates here, and the multipart patches of `patch.rs`.
//!
//! Metadata-only updates: an object copied onto itself on the server with
//! `x-amz-metadata-directive: REPLACE` and the new metadata header, so no
//! byte of the value crosses the network (`object_store` copies objects but
//! always keeps their metadata).
//!
//! The copy carries `x-amz-copy-source-if-match` with the ETag the caller's
//! metadata was read from, so a write that lands between that read and the
//! copy is never overwritten with the old map: the store refuses (412) and
//! the update is made again from the new state.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{HttpClient, HttpConnector, ReqwestConnector};
use object_store::path::Path;
use object_store::ClientOptions;

use super::http::QuickAckConnector;
use super::settings::S3Settings;
use super::traffic::{CountingConnector, TrafficCounts};
use crate::error::{Error, ErrorKind, Result};

/// What a copy onto itself answered.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Copied {
    /// The object now has the new metadata; its ETag and time as the
    /// answer gave them (`None` where it did not).
    Done { etag: Option<String>, modified: Option<SystemTime> },
    /// The object's ETag is no longer the one given: it changed meanwhile.
    Changed,
    /// The store cannot copy an object this large in one request (AWS: over
    /// 5 GiB); the caller falls back to rewriting it.
    TooLarge,
}

/// Sends copy-in-place requests for one bucket.
#[derive(Debug)]
pub(super) struct MetadataCopier {
    client: HttpClient,
    /// `scheme://host[:port]`, without a trailing slash.
    endpoint: String,
    bucket: String,
    region: String,
}

impl MetadataCopier {
    pub(super) fn new(
        settings: &S3Settings,
        options: &ClientOptions,
        traffic: &Arc<TrafficCounts>,
    ) -> object_store::Result<Self> {
        let endpoint = match &settings.endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => format!("https://s3.{}.amazonaws.com", settings.region),
        };
        let counts = traffic.clone();
        let client = match QuickAckConnector::for_endpoint(settings) {
            Some(inner) => CountingConnector { inner, counts }.connect(options)?,
            None => CountingConnector { inner: ReqwestConnector::default(), counts }.connect(options)?,
        };
        Ok(MetadataCopier {
            client,
            endpoint,
            bucket: settings.bucket.clone(),
            region: settings.region.clone(),
        })
    }

    /// Copies `path` onto itself with `metadata` as its only user metadata
    /// (`x-amz-meta-{name}: {value}`; none if `None`), if its ETag is
    /// still `etag` (unconditionally when the store gave none).
    pub(super) async fn copy_in_place(
        &self,
        credential: &AwsCredential,
        path: &Path,
        etag: Option<&str>,
        metadata: Option<(&str, &str)>,
    ) -> Result<Copied> {
        let mut headers = vec![
            ("x-amz-copy-source".to_owned(), self.source(path)),
            ("x-amz-metadata-directive".to_owned(), "REPLACE".to_owned()),
        ];
        if let Some(etag) = etag {
            headers.push(("x-amz-copy-source-if-match".to_owned(), etag.to_owned()));
        }
        if let Some((name, value)) = metadata {
            headers.push((format!("x-amz-meta-{name}"), value.to_owned()));
        }
        let answer = self.send(credential, http::Method::PUT, path, "", &headers, Bytes::new()).await?;
        if answer.ok() {
            let etag = answer.etag();
            let modified =
                xml_value(&answer.body, "LastModified").and_then(|t| humantime::parse_rfc3339_weak(t).ok());
            return Ok(Copied::Done { etag, modified });
        }
        let code = answer.code();
        Ok(match (answer.status, code) {
            (412, _) | (_, "PreconditionFailed") => Copied::Changed,
            (400, "InvalidRequest" | "EntityTooLarge")
                if answer.body.contains("size") || answer.body.contains("large") =>
            {
                Copied::TooLarge
            }
            _ => return Err(answer.error("copy")),
        })
    }

    /// `x-amz-copy-source` naming `path` in this bucket.
    pub(super) fn source(&self, path: &Path) -> String {
        format!("/{}/{}", encode(&self.bucket), encode(path.as_ref()))
    }

    /// Sends one signed request for `path` (with `query`, `""` or starting
    /// with `?`) and reads its whole answer.
    pub(super) async fn send(
        &self,
        credential: &AwsCredential,
        method: http::Method,
        path: &Path,
        query: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Answer> {
        let object = self.source(path);
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{object}{query}", self.endpoint))
            .header(http::header::CONTENT_LENGTH, body.len().to_string());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut request = request
            .body(body.into())
            .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("cannot build the request: {e}")))?;
        AwsAuthorizer::new(credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| Error::new(ErrorKind::Unavailable, format!("cannot sign the request: {e}")))?;
        let response = self.client.execute(request).await.map_err(|e| {
            Error::new(ErrorKind::Unavailable, format!("the request failed: {e}"))
                .with_source(e)
                .retryable(true)
        })?;
        let status = response.status().as_u16();
        let etag_header =
            response.headers().get(http::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.into_body().bytes().await.unwrap_or_default();
        Ok(Answer { status, etag_header, body: String::from_utf8_lossy(&body).into_owned() })
    }
}

/// What the store answered to one request of [`MetadataCopier::send`].
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    etag_header: Option<String>,
    pub body: String,
}

impl Answer {
    /// A success: a copy or a completion can fail after its 200 status is
    /// sent, the error then being in the body.
    pub(super) fn ok(&self) -> bool {
        (200..300).contains(&self.status) && !self.body.contains("<Error>")
    }

    /// The S3 error code of a failure (empty if none was given).
    pub(super) fn code(&self) -> &str {
        xml_value(&self.body, "Code").unwrap_or_default()
    }

    /// The ETag the answer gives, in its header or its XML body.
    pub(super) fn etag(&self) -> Option<String> {
        self.etag_header.clone().or_else(|| {
            xml_value(&self.body, "ETag").map(|e| e.replace("&quot;", "\"").replace("&#34;", "\""))
        })
    }

    /// The failure as an error of operation `what`: a changed object
    /// (`412`) is a `Conflict`.
    pub(super) fn error(&self, what: &str) -> Error {
        let code = self.code();
        match (self.status, code) {
            (412, _) | (_, "PreconditionFailed") => Error::new(
                ErrorKind::Conflict,
                format!("the object changed during the {what}; nothing was changed, retry"),
            ),
            (404, _) | (_, "NoSuchKey") => Error::new(ErrorKind::NotFound, "no such key"),
            (403, _) => Error::new(
                ErrorKind::PermissionDenied,
                format!("the object store refused the {what} ({code}); check the credentials and the bucket policy"),
            ),
            (s, _) => {
                let message = xml_value(&self.body, "Message").unwrap_or(code);
                Error::new(ErrorKind::Unavailable, format!("the object store failed the {what}: {s} {code}: {message}"))
                    .retryable(s >= 500 || s == 429)
            }
        }
    }
}

/// Percent-encodes all but unreserved characters and `/`, as S3 expects
/// in a path and in `x-amz-copy-source`, and as SigV4 signs it for S3.
fn encode(s: &str) -> String {
    super::path::percent_encode(s, b"-_.~/")
}

/// The text of the first `<tag>` element of an S3 XML answer.
pub(super) fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_once_keeping_slashes() {
        assert_eq!(encode("bucket/a b/ü%7B~x.y"), "bucket/a%20b/%C3%BC%257B~x.y");
    }

    #[test]
    fn copy_results_are_read() {
        let xml = "<CopyObjectResult><LastModified>2026-12-07T03:50:00.125Z</LastModified>\
                   <ETag>&quot;9b2c&quot;</ETag></CopyObjectResult>";
        assert_eq!(xml_value(xml, "ETag"), Some("&quot;9b2c&quot;"));
        let t = humantime::parse_rfc3339_weak(xml_value(xml, "LastModified").unwrap()).unwrap();
        assert_eq!(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(), 1_796_615_400_125);
    }

    #[test]
    fn error_codes_are_read() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";
        assert_eq!(xml_value(xml, "Code"), Some("NoSuchKey"));
        assert_eq!(xml_value(xml, "Message"), Some("gone"));
        assert_eq!(xml_value(xml, "Missing"), None);
    }
}
