//! What bundle verification reports: each check, the who/what/where/when summary, and the
//! text a dispute manager reads.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. `member.hash`, `receipt.signature`, `photo.binding`.
    pub check: String,
    /// The member, revision or entry it concerns.
    pub subject: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fix {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub mock: bool,
}

/// Who, what, where and when, from the latest receipt revision and the journal.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub order: String,
    pub revision: u32,
    pub revisions: u32,
    pub decision: String,
    pub signer_name: String,
    pub refusal_reason: Option<String>,
    pub customer: String,
    pub site: String,
    pub equipment: String,
    pub fault: String,
    pub diagnosis: String,
    pub work_done: String,
    pub engineer: String,
    pub provider: String,
    pub device_id: String,
    /// SHA-256 of the device's public key: compare with the server's registration.
    pub device_key_sha256: String,
    /// The verified attestation of the device key ("StrongBox, google Pixel 9 Pro, ..."),
    /// `None`: not attested.
    pub key_attestation: Option<String>,
    pub arrived_at: Option<String>,
    pub finished_at: Option<String>,
    /// The device clock's time of signing.
    pub signed_at: Option<String>,
    /// Where the engineer's device was when it recorded the arrival.
    pub arrival_fix: Option<Fix>,
    /// Metres between the arrival fix and the site's coordinates, when both are known.
    pub arrival_distance_m: Option<f64>,
    /// The offset the report shows local times in (the site's; China +08:00 by default).
    pub utc_offset_minutes: i32,
    /// The real-time interval of the signing, from a server time ticket (RFC 3339).
    pub signed_trusted: Option<(String, String)>,
    /// Where the server's evidence log holds the receipt's journal entry, when proven.
    pub logged: Option<String>,
    pub photos: usize,
    pub journal_entries: usize,
    pub charges_payable: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// True only when every check passed.
    pub ok: bool,
    pub bundle_version: Option<u32>,
    pub summary: Option<Summary>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// The report for people: verdict, who/what/where/when, then every check.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let failed = self.failures().count();
        match &self.summary {
            Some(s) => o.push_str(&format!("Onsite arbitration bundle: order {}, receipt revision {} of {}\n", s.order, s.revision, s.revisions)),
            None => o.push_str("Onsite arbitration bundle\n"),
        }
        if self.ok {
            o.push_str(&format!("VERDICT: VALID - all {} checks passed\n", self.checks.len()));
        } else {
            o.push_str(&format!("VERDICT: INVALID - {failed} of {} checks failed\n", self.checks.len()));
        }
        if let Some(s) = &self.summary {
            o.push_str(&format!("Who:   engineer {} ({}); device {} (key SHA-256 {})\n", s.engineer, s.provider, s.device_id, s.device_key_sha256));
            match &s.key_attestation {
                Some(a) => o.push_str(&format!("       key attested: {a}\n")),
                None => o.push_str("       key not attested: nothing proves the device key is in hardware\n"),
            }
            o.push_str(&format!("What:  {} - reported: {}\n       diagnosis: {}\n       work done: {}\n", s.equipment, s.fault, s.diagnosis, s.work_done));
            match &s.refusal_reason {
                Some(r) => o.push_str(&format!("       customer {} REFUSED to sign: {}\n", s.signer_name, r)),
                None => o.push_str(&format!("       signed by the customer: {}; payable {}\n", s.signer_name, s.charges_payable)),
            }
            o.push_str(&format!("Where: {} - {}\n", s.customer, s.site));
            if let Some(f) = &s.arrival_fix {
                let distance = s.arrival_distance_m.map(|d| format!(", {d:.0} m from the site")).unwrap_or_default();
                o.push_str(&format!(
                    "       arrival fix {:.6}, {:.6} (+/- {:.0} m){distance}{}\n",
                    f.lat,
                    f.lon,
                    f.accuracy_m,
                    if f.mock { " MOCK LOCATION" } else { "" }
                ));
            }
            let t = |v: &Option<String>| v.as_deref().map(|v| local_and_utc(v, s.utc_offset_minutes)).unwrap_or_else(|| "-".into());
            o.push_str(&format!(
                "When:  arrived {}\n       finished {}\n       signed {} (device clock)\n",
                t(&s.arrived_at),
                t(&s.finished_at),
                t(&s.signed_at)
            ));
            match &s.signed_trusted {
                Some((a, b)) => o.push_str(&format!("       signed between {a} and {b} (server time ticket)\n")),
                None => o.push_str("       no server time ticket anchors the signing: times are the device's own\n"),
            }
            if let Some(l) = &s.logged {
                o.push_str(&format!("       receipt entry logged by the server: {l}\n"));
            }
            o.push_str(&format!("Evidence: {} photos, {} journal entries\n", s.photos, s.journal_entries));
        }
        o.push_str("Checks:\n");
        for c in &self.checks {
            o.push_str(&format!(
                "  {}  {:<28} {}{}\n",
                if c.passed { "PASS" } else { "FAIL" },
                c.check,
                c.subject,
                if c.detail.is_empty() { String::new() } else { format!(" - {}", c.detail) }
            ));
        }
        o
    }
}

/// What the verifier may be told from outside the bundle.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The device key as the server registered it (SEC1); when given it must match.
    pub device_key: Option<Vec<u8>>,
    /// The time authority to trust (SEC1); defaults to the one the bundle names.
    pub time_authority: Option<Vec<u8>>,
    /// The evidence log's key (SEC1); when given, checkpoints must be signed by it.
    pub log_key: Option<Vec<u8>>,
    /// Local times in the report use this UTC offset (`None`: +08:00, the sites' zone).
    pub utc_offset_minutes: Option<i32>,
    /// Roots a key attestation may end at (`None`: the pinned Google and Apple roots).
    pub attestation_trust: Option<crate::attest::Trust>,
    /// Witnesses that must have cosigned the log's tree head each proof is of (keys and a
    /// quorum, docs/adr/0020). `None`: cosignatures are reported, not required.
    pub witness_policy: Option<crate::evidence::log::witness::Policy>,
}

/// Great-circle distance in metres (haversine, mean Earth radius).
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * a.sqrt().asin()
}

/// `2026-11-23 11:05 (UTC+08:00) = 2026-11-23T03:05:00.000Z`: local beside UTC.
pub(super) fn local_and_utc(iso: &str, offset_minutes: i32) -> String {
    match chrono::FixedOffset::east_opt(offset_minutes * 60) {
        Some(tz) => {
            let local = crate::receipt::html::local_time(iso, tz);
            if local == iso {
                iso.to_string()
            } else {
                format!("{local} = {iso}")
            }
        }
        None => iso.to_string(),
    }
}
