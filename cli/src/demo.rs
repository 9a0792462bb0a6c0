//! `onsite demo`: a guided walk through one order's lifecycle on a real store.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{Duration, FixedOffset, TimeZone, Utc};
use onsite_core::device::SyncOptions;
use onsite_core::device::{ExportOptions, PhotoSource};
use onsite_core::order::{LocationSource, TimeWindow, Timestamp};
use onsite_core::receipt::{ChargeBasis, ChargeLine, CustomerDecision, Rating, ReceiptInput};
use onsite_core::sla::ClockState;
use onsite_core::sop::{Answer, PhotoRef, StepKind};
use onsite_core::sync::HttpTransport;
use onsite_core::{Actor, Clock, Device, DeviceOptions, Event, GpsFix, ManualClock, OrderFilter, OrderSummary, OrderView};

/// What the engineer and customer put on a demo receipt.
pub fn receipt_input(signer: &str) -> ReceiptInput {
    ReceiptInput {
        diagnosis: "主板 DC-in 接口松动 / DC-in jack loose on the mainboard".into(),
        work_done: "重新焊接 DC-in 接口,当面复验开机正常 / resoldered the DC-in jack, verified boot in front of the customer".into(),
        charges: vec![ChargeLine { description: "保修维修 / warranty repair".into(), amount_cents: 0, basis: ChargeBasis::Warranty }],
        currency: "CNY".into(),
        rating: Some(Rating { score: 5, comment: "准时,专业 / on time, professional".into() }),
        signer_name: signer.into(),
        decision: CustomerDecision::Signed { strokes: onsite_core::signature::sample_strokes() },
        correction_reason: None,
    }
}

/// Walks the order's checklist like an engineer would: photo steps get real photos (made
/// here, ingested with the GPS fix), the others the demo answers. Returns (answers, photos).
pub fn walk_with_photos(device: &Device, id: &str, fix: Option<GpsFix>) -> Result<(usize, usize)> {
    let (mut answers, mut photos) = (0, 0);
    loop {
        let view = device.checklist(id)?;
        let Some(step) = view.evaluation.open().first().and_then(|s| view.template.step(s)).cloned() else {
            return Ok((answers, photos));
        };
        let answer = match &step.kind {
            StepKind::Photo { min, .. } => {
                let mut refs = Vec::new();
                for k in 0..(*min).max(1) {
                    let jpeg = crate::bench::test_photo(640, 480, (answers * 7 + k as usize) as u32);
                    let r = device.ingest_photo(id, Some(&step.id), PhotoSource::Bytes(&jpeg), fix)?;
                    photos += 1;
                    refs.push(PhotoRef { sha256: r.sha256, label: format!("{} #{}", step.label.zh, k + 1) });
                }
                Answer::Photos { photos: refs }
            }
            _ => {
                let order = device.get(id)?.order;
                onsite_core::sop::demo::answer_for(&view.template, &view.evaluation, &order, &step, device.now())
            }
        };
        device.answer(id, &step.id, answer)?;
        answers += 1;
        if answers > 1000 {
            anyhow::bail!("the checklist never closes");
        }
    }
}

pub const SAMPLE_ORDERS: &str = include_str!("../samples/orders.json");

fn local(ms: i64) -> String {
    let tz = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("utc"));
    Timestamp(ms).to_datetime().with_timezone(&tz).format("%m-%d %H:%M").to_string()
}

pub fn print_list(rows: &[OrderSummary]) {
    println!("{:<18} {:<19} {:<7} {:<12} {:<8} customer", "order", "status", "prio", "sla due", "");
    for r in rows {
        let due = r.sla_deadline.map(local).unwrap_or_else(|| "-".into());
        let flag = if r.breached { "BREACHED" } else { "" };
        println!("{:<18} {:<19} {:<7} {:<12} {:<8} {}", r.id, r.status.as_str(), r.priority, due, flag, r.customer);
    }
}

pub fn print_order(v: &OrderView) {
    let o = &v.order;
    println!("{}  [{}]  priority {}", o.id, o.status, o.priority.as_str());
    println!("  customer  {} / {} / {}", o.customer.company, o.customer.contact, o.customer.phone);
    println!("  site      {} ({} km, {})", o.site.address, o.site.distance_km, if o.site.in_service_area { "in service area" } else { "outside service area" });
    println!("  equipment {} {} {} s/n {} ({:?})", o.equipment.category, o.equipment.brand, o.equipment.model, o.equipment.serial, o.equipment.warranty);
    println!("  fault     {} (reported {})", o.fault.description, local(o.fault.reported_at.0));
    if let Some(w) = o.appointment {
        println!("  appointment {} - {}", local(w.start.0), local(w.end.0));
    }
    for c in &v.sla.clocks {
        let state = match c.state {
            ClockState::Pending => "pending".to_string(),
            ClockState::Breached => "BREACHED".to_string(),
            ClockState::Met { at } => format!("met at {}", local(at.0)),
            ClockState::MetLate { at } => format!("met LATE at {}", local(at.0)),
            ClockState::Stopped => "stopped".to_string(),
        };
        println!("  sla {:<13} due {}  {}", format!("{:?}", c.kind), local(c.deadline.0), state);
    }
    for t in &o.transitions {
        let at = t.fix.map(|f| format!(" @ {:.5},{:.5} ±{}m{}", f.lat, f.lon, f.accuracy_m, if f.mock { " MOCK" } else { "" })).unwrap_or_default();
        println!("  {}  {:>19} -> {:<19} ({}){}", local(t.at.0), t.from.as_str(), t.to.as_str(), t.event.name(), at);
    }
    for n in &o.notes {
        println!("  note {}: {}", local(n.at.0), n.text);
    }
    if !v.next_events.is_empty() {
        println!("  next: {}", v.next_events.join(", "));
    }
}

/// A witness beside the embedded server (ADR 0020): it trusts the provider's log key,
/// cosigns the log's checkpoint, and the server serves it cosigned.
fn witness_demo(running: &onsite_server::Running, dir: &std::path::Path, provider: &str) -> Result<()> {
    use onsite_core::evidence::log::note::Note;
    use onsite_core::evidence::log::witness::{Policy, Witness};
    use onsite_core::sync::transport::Transport as _;
    let log_key = running.service.log_verifier_key(provider)?;
    let witness = onsite_server::witness::spawn(&onsite_server::witness::WitnessConfig {
        data: dir.join("witness-data"),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        name: "witness.onsite.demo/w1".into(),
        logs: vec![log_key],
    })?;
    let key = witness.witness.verifier_key();
    running.service.add_witness(onsite_server::service::WitnessEndpoint::parse(&format!("{}={key}", witness.url())).map_err(anyhow::Error::msg)?);
    let resp = HttpTransport::new(&running.url())?
        .send(&onsite_core::sync::transport::Request::new(onsite_core::sync::transport::Method::Get, format!("/v1/log/{provider}/checkpoint")))?;
    let note = String::from_utf8(resp.body)?;
    let policy = Policy { witnesses: vec![Witness::parse(&key)?], quorum: 1 };
    let cosigners = policy.check(&Note::parse(&note)?)?;
    println!(
        "
witness {} listening on {} (key {key})",
        cosigners.join(", "),
        witness.url()
    );
    println!("$ curl {}/v1/log/{provider}/checkpoint", running.url());
    print!("{note}");
    Ok(())
}

/// The server the demo talks to: a given one, or one started here on a free loopback port.
enum DemoServer {
    Embedded(onsite_server::Running),
    External(String),
}

impl DemoServer {
    fn url(&self) -> String {
        match self {
            DemoServer::Embedded(r) => r.url(),
            DemoServer::External(u) => u.clone(),
        }
    }
}

pub fn run(data: Option<PathBuf>, server: Option<String>, admin_token: Option<String>, serve: bool) -> Result<()> {
    let temp;
    let dir = match data {
        Some(d) => d,
        None => {
            temp = tempfile::tempdir()?;
            // A subdirectory: the store's key file is kept beside it, inside the temp dir.
            temp.path().join("device")
        }
    };
    // A clock pinned to the morning of the sample orders, so the SLA story reads the same
    // every run; the store, the server and everything else are real.
    let start = Utc.with_ymd_and_hms(2026, 11, 23, 1, 25, 0).single().unwrap_or_else(Utc::now);
    let clock = Arc::new(ManualClock::at(start));
    let device = Device::open(DeviceOptions::new(&dir).with_clock(clock.clone()))?;
    println!("device {} with data in {}", device.device_id(), dir.display());

    // The sync server: its embedded SQLite and blob directory, on loopback.
    let server_dir = dir.join("server-data");
    let (server, admin) = match server {
        Some(url) => (DemoServer::External(url), admin_token.ok_or_else(|| anyhow::anyhow!("--server needs --admin-token (or ONSITE_ADMIN_TOKEN)"))?),
        None => {
            let running = onsite_server::spawn(onsite_server::Config::new(&server_dir))?;
            println!("sync server listening on {} (embedded SQLite: {})", running.url(), server_dir.join(onsite_server::DB_FILE).display());
            let admin = std::fs::read_to_string(server_dir.join(onsite_server::ADMIN_TOKEN_FILE))?.trim().to_string();
            (DemoServer::Embedded(running), admin)
        }
    };
    let url = server.url();
    let transport = HttpTransport::new(&url)?;
    let token_file = dir.join("demo-dispatcher-token");
    let dispatcher = if device.sync_server()?.is_some() && token_file.exists() {
        // A second run: same device, same provider; the embedded server moved port.
        device.set_sync_server(&url)?;
        println!("device already enrolled; continuing with the next open order");
        onsite_server::client::DispatcherClient::new(&url, std::fs::read_to_string(&token_file)?.trim())?
    } else {
        let mut provider = "prov-bj-chaoyang".to_string();
        let name = "北京朝阳快修服务站 / Beijing Chaoyang Service Station";
        let token = match onsite_server::client::create_provider(&url, &admin, &provider, name) {
            Ok(t) => t,
            Err(_) => {
                // The provider exists on this server already (an external server): use a fresh one.
                provider = format!("prov-bj-chaoyang-{}", &device.device_id()[..6]);
                onsite_server::client::create_provider(&url, &admin, &provider, name)?
            }
        };
        std::fs::write(&token_file, &token)?;
        let dispatcher = onsite_server::client::DispatcherClient::new(&url, &token)?;
        let mut orders: serde_json::Value = serde_json::from_str(SAMPLE_ORDERS)?;
        for o in orders.as_array_mut().into_iter().flatten() {
            o["provider"]["id"] = serde_json::Value::String(provider.clone());
        }
        let created = dispatcher.create_orders(&orders.to_string())?;
        let engineer = orders[0]["engineer"]["id"].as_str().unwrap_or("eng-017").to_string();
        println!("dispatcher of {provider} created {} orders: {}", created.len(), created.join(", "));
        let code = dispatcher.enrolment_code(&engineer)?;
        device.enrol(&transport, &url, &code)?;
        println!("enrolled with code {code} as engineer {engineer}");
        dispatcher
    };
    let first = device.sync(&transport, &SyncOptions::default(), None)?;
    println!("sync: {} orders received in {} round trips, {} bytes", first.orders_pulled, first.round_trips, first.bytes_sent + first.bytes_received);
    println!();
    print_list(&device.list(&OrderFilter::default())?);

    let Some(target) = device.list(&OrderFilter::default())?.into_iter().find(|s| !s.status.is_terminal()) else {
        anyhow::bail!("the server sent no open order");
    };
    let id = target.id;
    let site = device.get(&id)?.order.site.location;
    let fix = site.map(|p| GpsFix { lat: p.lat + 0.0002, lon: p.lon - 0.0001, accuracy_m: 6.5, source: LocationSource::Gps, mock: false });
    let window =
        TimeWindow { start: Timestamp::from_datetime(clock.now() + Duration::hours(1)), end: Timestamp::from_datetime(clock.now() + Duration::hours(3)) };
    let steps: Vec<(i64, Event, &str)> = vec![
        (5, Event::Accept, "accepted the order"),
        (20, Event::ContactCustomer { window }, "called the customer, appointment agreed"),
        (35, Event::Depart, "left the station"),
        (40, Event::Arrive, "arrived on site (GPS fix recorded)"),
        (10, Event::StartWork, "badge shown, warranty checked, work started"),
        (55, Event::RequestSignature, "repair verified in front of the customer"),
        (8, Event::Complete, "customer signed, order completed"),
    ];
    println!("\nworking {id} offline (no network until the end):");
    let mut illegal_shown = false;
    for (minutes, event, what) in steps {
        clock.advance(Duration::minutes(minutes));
        if !illegal_shown && matches!(event, Event::RequestSignature) {
            illegal_shown = true;
            match device.transition(&id, Event::Complete, Actor::Engineer, fix) {
                Err(e) => println!("  (refused as expected: {e})"),
                Ok(_) => anyhow::bail!("an illegal transition was accepted"),
            }
        }
        if matches!(event, Event::Complete) {
            let customer = device.get(&id)?.order.customer.contact;
            let r = device.sign_receipt(&id, &receipt_input(&customer))?;
            println!("               receipt r{} signed by {customer} on the device: SHA-256 {}", r.revision, &r.receipt_sha256[..16]);
        }
        let at_site = matches!(event, Event::Arrive | Event::StartWork | Event::RequestSignature | Event::Complete);
        let v = device.transition(&id, event, Actor::Engineer, if at_site { fix } else { None })?;
        println!("  {}  {:<19} {}", local(clock.now().timestamp_millis()), v.order.status.as_str(), what);
        if matches!(v.order.status, onsite_core::Status::OnSite) {
            let c = device.start_checklist(&id, "onsite-repair")?;
            println!("               checklist {} v{} started: {} steps", c.pinned.id, c.pinned.version, c.template.steps.len());
        }
        if matches!(v.order.status, onsite_core::Status::InProgress) {
            device.add_note(&id, "主板 DC-in 接口松动,已重新焊接 / DC-in jack loose, resoldered")?;
            let (n, photos) = walk_with_photos(&device, &id, fix)?;
            let c = device.checklist(&id)?;
            let na = c.evaluation.steps.iter().filter(|s| matches!(s.state, onsite_core::sop::StepState::NotApplicable { .. })).count();
            println!("               checklist walked: {n} answers, {photos} photos, {na} steps not applicable, {} blockers", c.evaluation.blockers.len());
        }
    }
    println!();
    print_order(&device.get(&id)?);
    println!();
    print_list(&device.list(&OrderFilter::default())?);
    let (f, path) = device.footprint()?;
    println!("\n{} orders, {} bytes of Automerge documents in {}", f.orders, f.bytes, path.display());

    // Meanwhile the dispatcher reprioritised another open order; now the device is back online.
    if let Some(other) = device.list(&OrderFilter::default())?.into_iter().find(|o| o.id != id && !o.status.is_terminal()) {
        dispatcher.set_priority(&other.id, "low")?;
        println!("\ndispatcher (meanwhile): {} priority -> low", other.id);
    }
    let r = device.sync(&transport, &SyncOptions::default(), None)?;
    println!(
        "sync: {} round trips, {} bytes sent, {} received; journal +{} entries, {} receipt(s), {} order(s) pushed, {} pulled, {} photo(s) uploaded ({} bytes)",
        r.round_trips,
        r.bytes_sent,
        r.bytes_received,
        r.journal_uploaded,
        r.receipts_uploaded,
        r.orders_pushed,
        r.orders_pulled,
        r.blobs_uploaded,
        r.blob_bytes
    );
    if !r.complete() {
        anyhow::bail!("sync left work pending: {:?}", r.errors);
    }
    let on_server: serde_json::Value = dispatcher.order(&id)?;
    println!(
        "server now has {id} as {} with {} transitions",
        on_server["status"].as_str().unwrap_or("?"),
        on_server["transitions"].as_array().map_or(0, |a| a.len())
    );
    if on_server != serde_json::to_value(device.get(&id)?.order)? {
        anyhow::bail!("the server's copy differs from the device's");
    }
    let proofs = device.log_proofs()?;
    let journal = device.journal(None)?;
    let log_key = device.log_key()?.context("the device is enrolled but has no log key")?;
    let verified = proofs.iter().filter(|p| journal.iter().any(|e| e.seq == p.seq && p.verify(&e.hash, Some(&log_key)).is_ok())).count();
    if let Some(p) = proofs.last() {
        println!(
            "evidence log: checkpoint of {} leaves, root {}…; {verified}/{} inclusion proofs verify on the device",
            p.checkpoint.size,
            &p.checkpoint.root[..16],
            proofs.len()
        );
    }
    let status = device.sync_status()?;
    println!("pending after sync: {} journal, {} orders, {} photos", status.pending_journal, status.pending_orders, status.pending_blobs);
    if let (DemoServer::Embedded(running), Some(provider)) = (&server, status.provider.as_deref()) {
        witness_demo(running, &dir, provider)?;
    }

    // The evidence anyone can check offline: the customer copy and the arbitration bundle.
    let out = dir.join("exports");
    std::fs::create_dir_all(&out)?;
    let html = out.join(format!("{id}-customer-copy.html"));
    std::fs::write(&html, device.customer_copy_html(&id, None)?)?;
    let zip = out.join(format!("{id}.zip"));
    let _ = std::fs::remove_file(&zip);
    let s = device.export_bundle(&id, &zip, ExportOptions::default())?;
    println!("customer copy: {}", html.display());
    println!("arbitration bundle: {} ({} bytes, {} photos, {} journal entries)", zip.display(), s.bytes, s.photos, s.journal_entries);
    let report = onsite_core::bundle::verify_file(&zip, &Default::default());
    let verdict = report.render_text();
    println!("\n$ onsite verify {}", zip.display());
    for line in verdict.lines().take(10) {
        println!("{line}");
    }
    println!("  ... {} checks", report.checks.len());
    if !report.ok {
        anyhow::bail!("the demo bundle does not verify");
    }
    // The web console: the board, the order just worked, the verifier for the bundle above.
    let token = std::fs::read_to_string(&token_file)?;
    println!("\nweb console: {url}/console/  (sign in with the dispatcher token {})", token.trim());
    println!("verifier:    {url}/console/verify  (drop {} on it; it is checked in the browser)", zip.display());
    if serve {
        println!("serving until Ctrl-C");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    } else if matches!(server, DemoServer::Embedded(_)) {
        println!("(the embedded server stops with the demo; `onsite demo --serve` keeps it and the console running)");
    }
    Ok(())
}
