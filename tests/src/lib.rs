//! Helpers shared by the integration tests in `tests/tests/`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The sample dispatcher orders the CLI's demo uses.
pub const SAMPLE_ORDERS: &str = include_str!("../../cli/samples/orders.json");

/// Path of the `onsite` binary of this build, building it first if needed (integration tests
/// of this crate cannot ask cargo for another package's binary).
pub fn onsite_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test> -> target/<profile>
        let profile_dir = exe.parent().and_then(|p| p.parent()).expect("target profile dir").to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "onsite-cli", "--bin", "onsite"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "building the onsite binary failed");
        let bin = profile_dir.join("onsite");
        assert!(bin.exists(), "{} missing", bin.display());
        bin
    })
    .clone()
}
