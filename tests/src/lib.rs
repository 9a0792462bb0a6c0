//! Helpers shared by the integration tests in `tests/tests/`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The sample dispatcher orders the CLI's demo uses.
pub const SAMPLE_ORDERS: &str = include_str!("../../cli/samples/orders.json");

/// Path of the sample dispatcher orders file.
pub fn samples_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cli/samples/orders.json")
}

/// Path of the `onsite` binary of this build, building it first if needed (integration tests
/// of this crate cannot ask cargo for another package's binary).
pub fn onsite_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("onsite-cli", "onsite")).clone()
}

/// Path of the `onsite-server` binary of this build, built if needed.
pub fn onsite_server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("onsite-server", "onsite-server")).clone()
}

fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    let profile_dir = exe.parent().and_then(|p| p.parent()).expect("target profile dir").to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", package, "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("running cargo build");
    assert!(status.success(), "building the {bin} binary failed");
    let path = profile_dir.join(bin);
    assert!(path.exists(), "{} missing", path.display());
    path
}

pub mod pg {
    //! Throwaway PostgreSQL databases and S3 prefixes for tests that run on the scale-out
    //! backends (`ONSITE_TEST_PG`, `ONSITE_TEST_S3`; the `postgres` suite of `scripts/test` sets both).

    /// A database created for one test and dropped after it.
    pub struct TempDatabase {
        admin: String,
        name: String,
    }

    impl TempDatabase {
        /// A fresh database on `ONSITE_TEST_PG`, and its URL.
        pub fn new() -> (Self, String) {
            let admin = std::env::var("ONSITE_TEST_PG").expect("ONSITE_TEST_PG names the PostgreSQL server to test against");
            let name = format!("onsite_t_{}", unique());
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
            let url = match admin.rsplit_once('/') {
                Some((base, _)) => format!("{base}/{name}"),
                None => panic!("ONSITE_TEST_PG must end in /DATABASE"),
            };
            (Self { admin, name }, url)
        }
    }

    impl Drop for TempDatabase {
        fn drop(&mut self) {
            if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
        }
    }

    /// 16 hex digits no other test of this run has.
    pub fn unique() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let h = onsite_core::hash::sha256_hex(format!("{n}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)).as_bytes());
        h[..16].to_string()
    }

    /// `s3://onsite?endpoint=...&prefix=t-<unique>` on `ONSITE_TEST_S3` (the endpoint URL), if set.
    pub fn s3_url() -> Option<String> {
        let endpoint = std::env::var("ONSITE_TEST_S3").ok()?;
        // SeaweedFS without identities takes any credentials; object_store wants some to sign.
        for (k, v) in [("AWS_ACCESS_KEY_ID", "onsite-test"), ("AWS_SECRET_ACCESS_KEY", "onsite-test")] {
            if std::env::var(k).is_err() {
                // SAFETY: tests set these before any S3 client (or other thread) reads the environment.
                unsafe { std::env::set_var(k, v) };
            }
        }
        Some(format!("s3://onsite?endpoint={endpoint}&region=us-east-1&prefix=t-{}", unique()))
    }
}

pub mod net {
    //! A loopback server and a transport that misbehaves on purpose.

    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use onsite_core::sync::transport::{HttpTransport, NetError, Request, Response, Transport};

    pub const PROVIDER: &str = "prov-test";

    /// A server on a free loopback port, with a provider and its dispatcher client.
    pub struct TestServer {
        pub running: onsite_server::Running,
        pub dispatcher: onsite_server::client::DispatcherClient,
        pub dir: tempfile::TempDir,
        token: String,
        /// The PostgreSQL database under test, dropped with the server (`ONSITE_TEST_PG`).
        _db: Option<crate::pg::TempDatabase>,
    }

    impl TestServer {
        /// A server on the embedded SQLite and blob files, or, when `ONSITE_TEST_PG` and
        /// `ONSITE_TEST_S3` are set (the `postgres` suite), on a fresh PostgreSQL database and
        /// an S3 prefix of its own: the same tests then prove the scale-out backends.
        pub fn start() -> Self {
            Self::start_with(|_| {})
        }

        /// [`TestServer::start`] with the configuration adjusted first.
        pub fn start_with(adjust: impl FnOnce(&mut onsite_server::Config)) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut config = onsite_server::Config::new(dir.path().join("server"));
            adjust(&mut config);
            config.admin_token = Some("admin-secret".into());
            // Every integration test merges a request's pushes on several threads, so the
            // parallel path is the one the suites prove (production defaults to one).
            config.push_workers = 4;
            let mut db = None;
            if std::env::var("ONSITE_TEST_PG").is_ok() {
                let (d, url) = crate::pg::TempDatabase::new();
                config.storage = Some(Arc::new(onsite_server::storage::PostgresStorage::open(&url).unwrap()));
                db = Some(d);
            }
            if let Some(url) = crate::pg::s3_url() {
                config.blobs = Some(onsite_server::blobs::open_store(&url).unwrap());
            }
            let running = onsite_server::spawn(config).unwrap();
            let token = onsite_server::client::create_provider(&running.url(), "admin-secret", PROVIDER, "Test provider").unwrap();
            let dispatcher = onsite_server::client::DispatcherClient::new(&running.url(), &token).unwrap();
            let token = token.clone();
            Self { running, dispatcher, dir, token, _db: db }
        }

        pub fn dispatcher_token(&self) -> &str {
            &self.token
        }

        pub fn url(&self) -> String {
            self.running.url()
        }

        pub fn transport(&self) -> HttpTransport {
            HttpTransport::new(&self.url()).unwrap()
        }

        /// Enrols `device` for `engineer`.
        pub fn enrol(&self, device: &onsite_core::Device, engineer: &str) {
            let code = self.dispatcher.enrolment_code(engineer).unwrap();
            device.enrol(&self.transport(), &self.url(), &code).unwrap();
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fault {
        /// The request never reaches the server.
        DropRequest,
        /// The server acts, the answer is lost.
        DropResponse,
        /// The request is delivered twice; the client sees the second answer.
        Duplicate,
        /// A 503 without the server seeing the request.
        Unavailable,
        /// The server acts and answers 502 (a proxy failing after the fact).
        BadGateway,
        /// This request is delivered now, and again (stale) after the next one.
        ReplayLater,
    }

    /// Wraps a transport and applies `faults` to successive requests (None = pass through).
    /// Every request's path and the fault it met, in order.
    pub type FaultLog = Mutex<Vec<(String, Option<Fault>)>>;
    /// Called with each request before it is sent (tests use it to act mid-sync).
    pub type RequestHook = Arc<dyn Fn(&Request) + Send + Sync>;

    pub struct FaultyTransport<T: Transport> {
        pub inner: T,
        plan: Mutex<VecDeque<Option<Fault>>>,
        replay: Mutex<Vec<Request>>,
        pub log: FaultLog,
        pub hook: Option<RequestHook>,
    }

    impl<T: Transport> FaultyTransport<T> {
        pub fn new(inner: T, plan: Vec<Option<Fault>>) -> Self {
            Self { inner, plan: Mutex::new(plan.into()), replay: Mutex::new(Vec::new()), log: Mutex::new(Vec::new()), hook: None }
        }

        pub fn faults_applied(&self) -> usize {
            self.log.lock().unwrap().iter().filter(|(_, f)| f.is_some()).count()
        }
    }

    impl<T: Transport> Transport for FaultyTransport<T> {
        fn send(&self, request: &Request) -> Result<Response, NetError> {
            if let Some(h) = &self.hook {
                h(request);
            }
            let fault = self.plan.lock().unwrap().pop_front().flatten();
            self.log.lock().unwrap().push((format!("{} {}", request.method.as_str(), request.path), fault));
            let stale: Vec<Request> = std::mem::take(&mut *self.replay.lock().unwrap());
            let result = match fault {
                None => self.inner.send(request),
                Some(Fault::DropRequest) => Err(NetError::Io("dropped before the server".into())),
                Some(Fault::DropResponse) => {
                    let _ = self.inner.send(request);
                    Err(NetError::Io("answer lost".into()))
                }
                Some(Fault::Duplicate) => {
                    let _ = self.inner.send(request);
                    self.inner.send(request)
                }
                Some(Fault::Unavailable) => {
                    Ok(Response { status: 503, headers: vec![], body: b"{\"error\":\"unavailable\",\"reason\":\"injected\"}".to_vec() })
                }
                Some(Fault::BadGateway) => {
                    let _ = self.inner.send(request);
                    Ok(Response { status: 502, headers: vec![], body: b"{\"error\":\"bad_gateway\",\"reason\":\"injected\"}".to_vec() })
                }
                Some(Fault::ReplayLater) => {
                    self.replay.lock().unwrap().push(request.clone());
                    self.inner.send(request)
                }
            };
            // Stale requests arrive after this one (reordering).
            for r in stale {
                let _ = self.inner.send(&r);
            }
            result
        }
    }
}

/// A noisy JPEG (hard to compress: about 1 byte per pixel at quality 92).
pub fn noisy_jpeg(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let img = image::RgbImage::from_fn(w, h, |i, j| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (x & 0x3f) as u8;
        image::Rgb([((i * 255 / w) as u8).wrapping_add(n), ((j * 255 / h) as u8).wrapping_add(n / 2), n.wrapping_mul(3)])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode_image(&img).unwrap();
    out
}

pub mod alloc;
pub mod attest;

/// The key test devices are encrypted with (a key file beside a temp directory would
/// outlive it).
pub fn test_key() -> onsite_core::crypt::StoreKey {
    onsite_core::crypt::StoreKey::from_bytes(&[0x24; 32]).expect("32 bytes")
}

/// Options for a test device in `dir`: encrypted with [`test_key`].
pub fn options(dir: impl Into<PathBuf>) -> onsite_core::DeviceOptions {
    onsite_core::DeviceOptions::new(dir).with_encryption(onsite_core::crypt::Encryption::Key(std::sync::Arc::new(onsite_core::crypt::FixedKey(test_key()))))
}

/// A test device's database opened raw (to tamper with it).
pub fn raw_db(dir: &std::path::Path) -> rusqlite::Connection {
    onsite_core::store::cipher::open_connection(&dir.join(onsite_core::store::DB_FILE), Some(&test_key())).expect("the test store opens")
}

/// Imports the sample orders and works `WO-20261123-0001` through seed 003 to a signed
/// receipt and completion (no photos); returns its id.
pub fn complete_sample_order(d: &onsite_core::Device) -> &'static str {
    use onsite_core::order::{Actor, Event, TimeWindow, Timestamp};
    use onsite_core::receipt::{ChargeBasis, ChargeLine, CustomerDecision, ReceiptInput};
    d.import_orders_json(SAMPLE_ORDERS).unwrap();
    let id = "WO-20261123-0001";
    let w = TimeWindow { start: Timestamp(d.now().0 + 3_600_000), end: Timestamp(d.now().0 + 7_200_000) };
    for e in [Event::Accept, Event::ContactCustomer { window: w }, Event::Depart, Event::Arrive, Event::StartWork] {
        d.transition(id, e, Actor::Engineer, None).unwrap();
    }
    d.start_checklist(id, "onsite-repair").unwrap();
    d.walk_checklist_demo(id).unwrap();
    d.transition(id, Event::RequestSignature, Actor::Engineer, None).unwrap();
    let input = ReceiptInput {
        diagnosis: "DC-in jack loose".into(),
        work_done: "resoldered".into(),
        charges: vec![ChargeLine { description: "warranty".into(), amount_cents: 0, basis: ChargeBasis::Warranty }],
        currency: "CNY".into(),
        rating: None,
        signer_name: "王女士".into(),
        decision: CustomerDecision::Signed { strokes: onsite_core::signature::sample_strokes() },
        correction_reason: None,
    };
    d.sign_receipt(id, &input).unwrap();
    d.transition(id, Event::Complete, Actor::Engineer, None).unwrap();
    id
}
