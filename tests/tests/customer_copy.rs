//! The printable customer copy (客户联) as a browser renders it: headless Chromium takes a
//! screenshot of the HTML the device produced, and the test checks what a customer would
//! see (text, the photos, the signature in ink) and compares it with the kept reference.
//!
//! Needs `chromium` (scripts/bootstrap installs it with the CJK fonts). Set
//! ONSITE_UPDATE_SCREENSHOTS=1 to rewrite the reference after an intended layout change.

use std::process::Command;

use onsite_tests::onsite_bin;

const W: u32 = 800;
const H: u32 = 2400;

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new("sh").arg("-c").arg(format!("command -v {c}")).output().map(|o| o.status.success()).unwrap_or(false) {
            return c.to_string();
        }
    }
    panic!("headless Chromium is needed for the customer-copy screenshot test: run scripts/bootstrap (apt install chromium fonts-noto-cjk)");
}

fn screenshot(html: &std::path::Path, png: &std::path::Path) -> image::RgbImage {
    let out = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1"])
        .arg(format!("--window-size={W},{H}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(out.status.success() && png.exists(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    image::open(png).unwrap().to_rgb8()
}

/// Mean absolute difference (0..255) of two images on an 8x8-pixel-block grid (blocks
/// average out anti-aliasing and the few hex digits that differ between runs).
fn block_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let (w, h) = (a.width().min(b.width()) / 8, a.height().min(b.height()) / 8);
    let mean = |img: &image::RgbImage, bx: u32, by: u32| -> f64 {
        let mut s = 0u32;
        for y in 0..8 {
            for x in 0..8 {
                let p = img.get_pixel(bx * 8 + x, by * 8 + y).0;
                s += p[0] as u32 + p[1] as u32 + p[2] as u32;
            }
        }
        s as f64 / 192.0
    };
    let mut total = 0.0;
    for by in 0..h {
        for bx in 0..w {
            total += (mean(a, bx, by) - mean(b, bx, by)).abs();
        }
    }
    total / (w * h) as f64
}

#[test]
fn the_customer_copy_renders_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("device");
    let out = Command::new(onsite_bin()).arg("--data").arg(&data).arg("demo").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = data.join("exports/WO-20261123-0001-customer-copy.html");
    let png = dir.path().join("copy.png");
    let img = screenshot(&html, &png);
    assert_eq!((img.width(), img.height()), (W, H));

    // The signature, in its ink colour (#1a237e), anti-aliased: a few hundred pixels.
    let ink = img.pixels().filter(|p| (p[0] as i32 - 0x1a).abs() < 24 && (p[1] as i32 - 0x23).abs() < 24 && (p[2] as i32 - 0x7e).abs() < 24).count();
    assert!(ink > 300, "signature ink pixels: {ink}");
    // The photo thumbnails: strongly coloured pixels (the page itself is black on white).
    let colour = img.pixels().filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 80).count();
    assert!(colour > 20_000, "thumbnail pixels: {colour}");
    // Text: dark pixels spread over many rows (headings, table, CJK glyphs rendered, not
    // missing-glyph boxes: those would still be dark, so the reference comparison below
    // guards the glyphs themselves).
    let dark_rows = (0..H).filter(|&y| (0..W).any(|x| img.get_pixel(x, y).0.iter().all(|&c| c < 90))).count();
    assert!(dark_rows > 400, "rows with text: {dark_rows}");

    let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots/customer-copy.png");
    if std::env::var_os("ONSITE_UPDATE_SCREENSHOTS").is_some() {
        std::fs::copy(&png, &reference).unwrap();
    }
    let want = image::open(&reference).expect("reference screenshot tests/screenshots/customer-copy.png").to_rgb8();
    let diff = block_diff(&img, &want);
    if diff >= 3.0 {
        let keep = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/customer-copy-actual.png");
        let _ = std::fs::copy(&png, &keep);
        panic!("the customer copy renders differently from the reference (block diff {diff:.2}); actual kept at {}", keep.display());
    }
}
