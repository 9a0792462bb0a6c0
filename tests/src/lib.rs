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
    }

    impl TestServer {
        pub fn start() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut config = onsite_server::Config::new(dir.path().join("server"));
            config.admin_token = Some("admin-secret".into());
            let running = onsite_server::spawn(config).unwrap();
            let token = onsite_server::client::create_provider(&running.url(), "admin-secret", PROVIDER, "Test provider").unwrap();
            let dispatcher = onsite_server::client::DispatcherClient::new(&running.url(), &token).unwrap();
            let token = token.clone();
            Self { running, dispatcher, dir, token }
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
