//! Blobs in an S3 bucket (`--blobs s3://BUCKET?endpoint=URL&region=R&prefix=P`), through the
//! `object_store` crate. Credentials come from the usual environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, or the instance's role);
//! `anonymous=true` sends unsigned requests (a gateway without identities).
//!
//! `object_store` is async; the server's storage calls are blocking (they run on the blocking
//! pool). Each call is spawned onto this store's own small runtime and waited for on a
//! channel, which works from any thread, inside a runtime or not.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore as _, PutPayload, RetryConfig};

use super::store::{check_key, Error, Listed, ObjectStore, Result};

pub struct S3Store {
    inner: Arc<dyn object_store::ObjectStore>,
    rt: tokio::runtime::Runtime,
    bucket: String,
    endpoint: String,
    prefix: String,
}

/// `s3://BUCKET?endpoint=...&region=...&prefix=...&anonymous=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub prefix: String,
    pub anonymous: bool,
}

impl S3Url {
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Remote { op: "parse", key: url.to_string(), reason: reason.to_string() };
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("an S3 location starts with s3://"))?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        let bucket = bucket.trim_end_matches('/');
        if bucket.is_empty() || bucket.contains('/') {
            return Err(bad("name one bucket: s3://BUCKET?endpoint=...; use prefix=... for a folder"));
        }
        let mut out = S3Url { bucket: bucket.to_string(), endpoint: None, region: "us-east-1".into(), prefix: String::new(), anonymous: false };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "endpoint" => out.endpoint = Some(v.to_string()),
                "region" => out.region = v.to_string(),
                "prefix" => {
                    let p = v.trim_matches('/');
                    if !p.is_empty() {
                        check_key(p).map_err(|_| bad("prefix must be a plain relative name"))?;
                    }
                    out.prefix = p.to_string();
                }
                "anonymous" => out.anonymous = v == "true" || v == "1",
                other => return Err(bad(&format!("unknown parameter `{other}` (endpoint, region, prefix, anonymous)"))),
            }
        }
        Ok(out)
    }
}

fn remote<'a>(op: &'static str, key: &'a str) -> impl FnOnce(object_store::Error) -> Error + 'a {
    move |e| Error::Remote { op, key: key.to_string(), reason: e.to_string() }
}

impl S3Store {
    pub fn open(url: &str) -> Result<Self> {
        let u = S3Url::parse(url)?;
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&u.bucket).with_region(&u.region).with_virtual_hosted_style_request(false);
        if let Some(e) = &u.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if u.anonymous {
            b = b.with_skip_signature(true);
        }
        // A gateway that is down answers in seconds, not after the default three minutes.
        b = b.with_retry(RetryConfig { max_retries: 4, retry_timeout: Duration::from_secs(20), ..Default::default() });
        let inner = b.build().map_err(remote("open", url))?;
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("onsite-s3").enable_all().build().map_err(|source| Error::Io {
            op: "runtime",
            key: url.to_string(),
            source,
        })?;
        let endpoint = u.endpoint.clone().unwrap_or_else(|| "aws".into());
        Ok(Self { inner: Arc::new(inner), rt, bucket: u.bucket, endpoint, prefix: u.prefix })
    }

    fn path(&self, key: &str) -> Result<Path> {
        check_key(key)?;
        Ok(if self.prefix.is_empty() { Path::from(key) } else { Path::from(format!("{}/{key}", self.prefix)) })
    }

    /// Runs `f` on this store's runtime and waits for it from the calling thread.
    fn run<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> std::result::Result<T, Error> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().map_err(|_| Error::Remote { op: "wait", key: String::new(), reason: "the S3 runtime stopped".into() })
    }
}

impl ObjectStore for S3Store {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let (s, p, payload) = (self.inner.clone(), self.path(key)?, PutPayload::from(bytes.to_vec()));
        self.run(async move { s.put(&p, payload).await })?.map(|_| ()).map_err(remote("put", key))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let (s, p) = (self.inner.clone(), self.path(key)?);
        let got = self.run(async move {
            match s.get(&p).await {
                Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(remote("get", key))
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        let (s, p) = (self.inner.clone(), self.path(key)?);
        let got = self.run(async move {
            match s.head(&p).await {
                Ok(m) => Ok(Some(m.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(remote("head", key))
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let dir = prefix.trim_end_matches('/');
        let (s, p) = (self.inner.clone(), self.path(dir)?);
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let metas: Vec<object_store::ObjectMeta> = self.run(async move { s.list(Some(&p)).try_collect().await })?.map_err(remote("list", prefix))?;
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref().strip_prefix(strip.as_str())?.to_string();
                key.starts_with(prefix).then(|| Listed { key, size: m.size, modified: m.last_modified.into() })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let (s, p) = (self.inner.clone(), self.path(key)?);
        let done = self.run(async move {
            match s.delete(&p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })?;
        done.map_err(remote("delete", key))
    }

    fn check(&self) -> Result<()> {
        // Listing one folder proves the bucket exists and the credentials are accepted.
        self.list("health/").map(|_| ())
    }

    fn describe(&self) -> String {
        format!("s3://{} at {}", self.bucket, self.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_bad_ones_named() {
        let u = S3Url::parse("s3://photos?endpoint=http://127.0.0.1:8333&region=eu-west-1&prefix=prov/a").unwrap();
        assert_eq!(u.bucket, "photos");
        assert_eq!(u.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(u.region, "eu-west-1");
        assert_eq!(u.prefix, "prov/a");
        assert!(!u.anonymous);
        assert_eq!(S3Url::parse("s3://b").unwrap().region, "us-east-1");
        for bad in ["http://b", "s3://", "s3://a/b", "s3://b?colour=red", "s3://b?prefix=../x"] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }
}
