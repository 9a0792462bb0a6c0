//! The printable customer copy (客户联): one self-contained HTML page (no network, no
//! scripts) with the receipt's content, the signature image and photo thumbnails, laid out
//! for A4 and for a phone screen. Every value is escaped.

use super::{Outcome, Receipt};

/// A thumbnail to show: the photo's hash and step, and its JPEG bytes.
pub struct Thumb<'a> {
    pub sha256: &'a str,
    pub step: Option<&'a str>,
    pub jpeg: &'a [u8],
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn money(cents: i64, currency: &str) -> String {
    format!("{currency} {}.{:02}", cents / 100, (cents % 100).abs())
}

fn row(out: &mut String, label: &str, value: &str) {
    out.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>", label, escape(value)));
}

/// The customer copy. `signature_svg` is the deterministic rendering of the strokes (trusted
/// markup produced by `signature::render_svg`, embedded as an image so it cannot script).
/// A receipt time (RFC 3339, UTC) as the customer reads it: local time of the site's calendar
/// with its offset (`2026-11-23 11:05 (UTC+08:00)`); anything unparsable is shown as given.
pub fn local_time(iso: &str, tz: chrono::FixedOffset) -> String {
    match chrono::DateTime::parse_from_rfc3339(iso) {
        Ok(t) => {
            let local = t.with_timezone(&tz);
            let secs = tz.local_minus_utc();
            let sign = if secs < 0 { '-' } else { '+' };
            format!("{} (UTC{sign}{:02}:{:02})", local.format("%Y-%m-%d %H:%M"), secs.abs() / 3600, secs.abs() % 3600 / 60)
        }
        Err(_) => iso.to_string(),
    }
}

/// The receipt's machine names (`in_warranty`, `paid`, ...) as words, in both languages.
pub fn label(name: &str) -> String {
    let l = match name {
        "in_warranty" => "保修期内 In warranty",
        "out_of_warranty" => "已过保 Out of warranty",
        "unknown" => "未知 Unknown",
        "extended" => "延保 Extended warranty",
        "warranty" => "保修 Warranty",
        "paid" => "有偿 Paid",
        "mixed" => "部分保修 Partly warranty",
        "no_charge" => "免费 No charge",
        "laptop" => "笔记本电脑 Laptop",
        "desktop" => "台式机 Desktop",
        "printer" => "打印机 Printer",
        "server" => "服务器 Server",
        "monitor" => "显示器 Monitor",
        other => return other.replace('_', " "),
    };
    l.to_string()
}

pub fn customer_copy(r: &Receipt, receipt_sha256: &str, signature_svg: Option<&str>, thumbs: &[Thumb<'_>], tz: chrono::FixedOffset) -> String {
    let when = |iso: &str| escape(&local_time(iso, tz));
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut h = String::with_capacity(16 * 1024);
    h.push_str("<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    h.push_str(&format!("<title>维修回执 {} (r{})</title>", escape(&r.order), r.revision));
    h.push_str(
        "<style>body{font-family:'Noto Sans CJK SC','Noto Sans',sans-serif;margin:24px;color:#222;max-width:760px}\
         h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px;border-bottom:1px solid #999}\
         table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:3px 6px;font-size:13px}\
         th{width:30%;color:#555;font-weight:normal}.mono{font-family:monospace;font-size:11px;word-break:break-all}\
         .thumbs{display:flex;flex-wrap:wrap;gap:8px}.thumbs figure{margin:0;width:160px}.thumbs img{width:160px;height:auto;border:1px solid #ccc}\
         figcaption{font-size:11px;color:#555}#signature{border:1px solid #999;padding:6px;min-height:80px}\
         #signature img{max-width:100%;height:120px}.refused{color:#b00020;font-weight:bold}\
         @media print{body{margin:12mm}}</style></head><body>",
    );
    h.push_str(&format!(
        "<h1>维修服务回执单 / Service receipt</h1><div>工单 Order <b>{}</b> · 版本 Revision {} · {}</div>",
        escape(&r.order),
        r.revision,
        when(&r.issued_at)
    ));
    if let Some(s) = &r.supersedes {
        h.push_str(&format!("<div>更正版本,取代第 {} 版 / Corrects revision {}: {}</div>", s.revision, s.revision, escape(&s.reason)));
    }

    h.push_str("<h2>客户与设备 Customer and equipment</h2><table>");
    row(&mut h, "客户 Customer", &format!("{} · {} · {}", r.customer.company, r.customer.contact, r.customer.phone));
    row(&mut h, "地址 Site", &r.site.address);
    row(&mut h, "设备 Equipment", &format!("{} {} {} (S/N {})", label(&r.equipment.category), r.equipment.brand, r.equipment.model, r.equipment.serial));
    row(
        &mut h,
        "保修 Warranty",
        &format!("{}{}", label(&r.equipment.warranty), r.equipment.warranty_ends.as_deref().map(|d| format!(" (至 until {d})")).unwrap_or_default()),
    );
    row(&mut h, "故障 Reported fault", &r.fault.description);
    h.push_str("</table>");

    h.push_str("<h2>维修 Service</h2><table>");
    row(
        &mut h,
        "诊断 Diagnosis",
        &format!("{}{}", if r.diagnosis.fault_kind.is_empty() { String::new() } else { format!("[{}] ", r.diagnosis.fault_kind.join(", ")) }, r.diagnosis.text),
    );
    row(&mut h, "处理 Work done", &r.work_done);
    for p in &r.parts {
        row(
            &mut h,
            &format!("备件 Part ({})", escape(&p.step)),
            &format!(
                "{} × {} S/N {}{}",
                p.part_number,
                p.quantity,
                p.serial,
                p.returned_serial.as_deref().map(|s| format!(", 旧件 returned {s}")).unwrap_or_default()
            ),
        );
    }
    let time_or_dash = |t: &Option<String>| t.as_deref().map(|t| local_time(t, tz)).unwrap_or_else(|| "-".into());
    row(&mut h, "到达 Arrived", &time_or_dash(&r.times.arrived_at));
    row(&mut h, "开始 Started", &time_or_dash(&r.times.started_at));
    row(&mut h, "完成 Finished", &time_or_dash(&r.times.finished_at));
    if let Some(m) = r.times.on_site_minutes {
        row(&mut h, "现场用时 On site", &format!("{m} min"));
    }
    row(&mut h, "工程师 Engineer", &format!("{} ({}) · {}", r.engineer.name, r.engineer.id, r.provider.name));
    row(&mut h, "回访 Follow-up", &format!("{} – {}", r.follow_up.earliest, r.follow_up.latest));
    h.push_str("</table>");

    if let Some(c) = &r.checklist {
        let done = c.steps.iter().filter(|s| s.state == "done").count();
        h.push_str(&format!("<h2>作业清单 Checklist</h2><div>{} v{}: {done}/{} 步完成 steps done</div><table>", escape(&c.template), c.version, c.steps.len()));
        for k in &c.consents {
            row(
                &mut h,
                &format!("同意 Consent ({})", escape(&k.step)),
                &format!("{} · {}", if k.accepted { "同意 accepted" } else { "拒绝 refused" }, local_time(&k.at, tz)),
            );
        }
        h.push_str("</table>");
    }

    h.push_str("<h2>费用 Charges</h2><table>");
    for l in &r.charges.lines {
        row(
            &mut h,
            &escape(&l.description),
            &format!(
                "{} ({})",
                money(l.amount_cents, &r.charges.currency),
                if l.basis == super::ChargeBasis::Warranty { "保修 warranty" } else { "有偿 paid" }
            ),
        );
    }
    row(&mut h, "应付 Payable", &money(r.charges.payable_cents, &r.charges.currency));
    h.push_str("</table>");

    if let Some(rt) = &r.rating {
        h.push_str(&format!(
            "<h2>评价 Rating</h2><div>{}{} {}/5</div><div>{}</div>",
            "★".repeat(rt.score as usize),
            "☆".repeat(5 - rt.score as usize),
            rt.score,
            escape(&rt.comment)
        ));
    }

    if !thumbs.is_empty() {
        h.push_str("<h2>照片 Photos</h2><div class=\"thumbs\">");
        for t in thumbs {
            h.push_str(&format!(
                "<figure><img alt=\"photo {}\" src=\"data:image/jpeg;base64,{}\"><figcaption>{} · <span class=\"mono\">{}</span></figcaption></figure>",
                escape(&t.sha256[..t.sha256.len().min(12)]),
                b64.encode(t.jpeg),
                escape(t.step.unwrap_or("-")),
                escape(&t.sha256[..t.sha256.len().min(16)])
            ));
        }
        h.push_str("</div>");
    }

    h.push_str("<h2>客户签收 Customer signature</h2><div id=\"signature\">");
    match (&r.outcome, signature_svg) {
        (Outcome::Signed { signer_name, .. }, Some(svg)) => {
            h.push_str(&format!("<img alt=\"signature\" src=\"data:image/svg+xml;base64,{}\"><div>{}</div>", b64.encode(svg.as_bytes()), escape(signer_name)));
        }
        (Outcome::Signed { signer_name, .. }, None) => h.push_str(&format!("<div>{}</div>", escape(signer_name))),
        (Outcome::Refused { signer_name, reason }, _) => {
            h.push_str(&format!(
                "<div class=\"refused\">客户拒绝签字 / The customer refused to sign: {}</div><div>{}</div>",
                escape(reason),
                escape(signer_name)
            ));
        }
    }
    h.push_str("</div>");
    h.push_str(&format!(
        "<h2>核验 Verification</h2><div class=\"mono\">receipt SHA-256 {}</div><div class=\"mono\">journal head #{} {}</div>",
        escape(receipt_sha256),
        r.journal_head.seq,
        escape(&r.journal_head.hash)
    ));
    h.push_str("</body></html>");
    h
}
