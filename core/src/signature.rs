//! Signature strokes (customer signatures on consents and receipts) as data: points with
//! time and pressure, in one canonical binary encoding so their hash is stable.
//!
//! Encoding v1: `b"OSS1"`, u16 stroke count, then per stroke a u16 point count and per point
//! x, y (f32, in the pad's points), t (u32, ms since the first point of the signature) and
//! pressure (f32, 0..1), all little-endian. Limits: 64 strokes, 4096 points per stroke.

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"OSS1";
pub const MAX_STROKES: usize = 64;
pub const MAX_POINTS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StrokePoint {
    pub x: f32,
    pub y: f32,
    pub t_ms: u32,
    pub pressure: f32,
}

pub type Stroke = Vec<StrokePoint>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("invalid signature strokes: {0}")]
    Invalid(String),
}

fn invalid(s: impl Into<String>) -> Error {
    Error::Invalid(s.into())
}

pub fn encode(strokes: &[Stroke]) -> Result<Vec<u8>, Error> {
    if strokes.len() > MAX_STROKES {
        return Err(invalid(format!("more than {MAX_STROKES} strokes")));
    }
    let points: usize = strokes.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(6 + strokes.len() * 2 + points * 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(strokes.len() as u16).to_le_bytes());
    for s in strokes {
        if s.is_empty() || s.len() > MAX_POINTS {
            return Err(invalid(format!("a stroke has 1 to {MAX_POINTS} points")));
        }
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        for p in s {
            if !p.x.is_finite() || !p.y.is_finite() || !(0.0..=1.0).contains(&p.pressure) {
                return Err(invalid("coordinates must be finite and pressure within 0..1"));
            }
            out.extend_from_slice(&p.x.to_le_bytes());
            out.extend_from_slice(&p.y.to_le_bytes());
            out.extend_from_slice(&p.t_ms.to_le_bytes());
            out.extend_from_slice(&p.pressure.to_le_bytes());
        }
    }
    Ok(out)
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Stroke>, Error> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| invalid("not a v1 stroke encoding"))?;
    let mut take = |n: usize| -> Result<&[u8], Error> {
        if rest.len() < n {
            return Err(invalid("truncated"));
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Ok(a)
    };
    let u16_at = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]) as usize;
    let f32_at = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let count = u16_at(take(2)?);
    if count > MAX_STROKES {
        return Err(invalid("too many strokes"));
    }
    let mut strokes = Vec::with_capacity(count);
    for _ in 0..count {
        let n = u16_at(take(2)?);
        if n == 0 || n > MAX_POINTS {
            return Err(invalid("bad point count"));
        }
        let raw = take(n * 16)?;
        strokes.push(
            raw.chunks_exact(16)
                .map(|c| StrokePoint {
                    x: f32_at(&c[0..4]),
                    y: f32_at(&c[4..8]),
                    t_ms: u32::from_le_bytes([c[8], c[9], c[10], c[11]]),
                    pressure: f32_at(&c[12..16]),
                })
                .collect(),
        );
    }
    if !rest.is_empty() {
        return Err(invalid("trailing bytes"));
    }
    Ok(strokes)
}

/// The hash bound into consents and receipts: SHA-256 (hex) of the canonical encoding.
pub fn strokes_sha256(encoded: &[u8]) -> String {
    crate::hash::sha256_hex(encoded)
}

/// Ink colour of rendered signatures (dark blue, as a pen signature on a paper form).
pub const INK: [u8; 3] = [0x1a, 0x23, 0x7e];
const MARGIN: f32 = 8.0;

/// Bounding box (min x, min y, max x, max y) of every point; a unit box for no strokes.
fn bounds(strokes: &[Stroke]) -> (f32, f32, f32, f32) {
    let mut b = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in strokes.iter().flatten() {
        b = (b.0.min(p.x), b.1.min(p.y), b.2.max(p.x), b.3.max(p.y));
    }
    if b.0 > b.2 {
        return (0.0, 0.0, 1.0, 1.0);
    }
    b
}

/// Pen width for a pressure reading (0..1), in the pad's points.
fn pen_width(pressure: f32) -> f32 {
    1.0 + 3.0 * pressure
}

/// Deterministic SVG of the strokes: one path per stroke, coordinates with one decimal, the
/// pen width from the stroke's mean pressure. The same strokes always give the same bytes,
/// so a verifier re-renders and compares.
pub fn render_svg(strokes: &[Stroke]) -> String {
    let (x0, y0, x1, y1) = bounds(strokes);
    let (w, h) = (x1 - x0 + 2.0 * MARGIN, y1 - y0 + 2.0 * MARGIN);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w:.1} {h:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"none\" stroke=\"#{:02x}{:02x}{:02x}\" stroke-linecap=\"round\" stroke-linejoin=\"round\">",
        INK[0], INK[1], INK[2]
    );
    for s in strokes {
        let mean = s.iter().map(|p| p.pressure).sum::<f32>() / s.len().max(1) as f32;
        out.push_str(&format!("<path stroke-width=\"{:.2}\" d=\"", pen_width(mean)));
        for (i, p) in s.iter().enumerate() {
            let (x, y) = (p.x - x0 + MARGIN, p.y - y0 + MARGIN);
            if i == 0 {
                // A single-point stroke (a dot) still draws: a zero-length segment with round caps.
                out.push_str(&format!("M{x:.1} {y:.1}"));
                if s.len() == 1 {
                    out.push_str(&format!("L{x:.1} {y:.1}"));
                }
            } else {
                out.push_str(&format!("L{x:.1} {y:.1}"));
            }
        }
        out.push_str("\"/>");
    }
    out.push_str("</svg>");
    out
}

/// Deterministic PNG of the strokes, scaled to fit `max_w` x `max_h`, ink on white. The
/// rasterizer stamps discs along each segment (width from the interpolated pressure) with
/// plain f32 arithmetic, so the pixels are the same on every platform.
pub fn render_png(strokes: &[Stroke], max_w: u32, max_h: u32) -> Result<Vec<u8>, Error> {
    let (x0, y0, x1, y1) = bounds(strokes);
    let (w, h) = (x1 - x0 + 2.0 * MARGIN, y1 - y0 + 2.0 * MARGIN);
    let scale = (max_w.max(1) as f32 / w).min(max_h.max(1) as f32 / h).min(4.0);
    let (pw, ph) = (((w * scale).ceil() as u32).clamp(1, max_w.max(1)), ((h * scale).ceil() as u32).clamp(1, max_h.max(1)));
    let mut img = image::RgbImage::from_pixel(pw, ph, image::Rgb([255, 255, 255]));
    let mut stamp = |cx: f32, cy: f32, r: f32| {
        let r = r.max(0.5);
        let (xa, xb) = ((cx - r).floor().max(0.0) as u32, ((cx + r).ceil() as u32).min(pw - 1));
        let (ya, yb) = ((cy - r).floor().max(0.0) as u32, ((cy + r).ceil() as u32).min(ph - 1));
        for py in ya..=yb {
            for px in xa..=xb {
                let (dx, dy) = (px as f32 + 0.5 - cx, py as f32 + 0.5 - cy);
                if dx * dx + dy * dy <= r * r {
                    img.put_pixel(px, py, image::Rgb(INK));
                }
            }
        }
    };
    let at = |p: &StrokePoint| ((p.x - x0 + MARGIN) * scale, (p.y - y0 + MARGIN) * scale);
    for s in strokes {
        let mut prev: Option<(f32, f32, f32)> = None;
        for p in s {
            let (x, y) = at(p);
            let r = pen_width(p.pressure) * scale / 2.0;
            match prev {
                None => stamp(x, y, r),
                Some((px, py, pr)) => {
                    let len = ((x - px).powi(2) + (y - py).powi(2)).sqrt();
                    let steps = ((len * 2.0).ceil() as u32).clamp(1, 100_000);
                    for i in 1..=steps {
                        let t = i as f32 / steps as f32;
                        stamp(px + (x - px) * t, py + (y - py) * t, pr + (r - pr) * t);
                    }
                }
            }
            prev = Some((x, y, r));
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).map_err(|e| invalid(format!("PNG encoding failed: {e}")))?;
    Ok(out.into_inner())
}

/// A plausible handwritten signature (two strokes), for demos and tests.
pub fn sample_strokes() -> Vec<Stroke> {
    let mut a = Vec::new();
    for i in 0..40u32 {
        let t = i as f32 / 39.0;
        a.push(StrokePoint { x: 10.0 + 120.0 * t, y: 40.0 + 18.0 * (t * 9.0).sin(), t_ms: i * 12, pressure: 0.35 + 0.3 * (t * 3.0).sin().abs() });
    }
    let b = (0..12u32).map(|i| StrokePoint { x: 60.0 + 4.0 * i as f32, y: 20.0 + 5.0 * i as f32, t_ms: 700 + i * 15, pressure: 0.6 }).collect();
    vec![a, b]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn point() -> impl Strategy<Value = StrokePoint> {
        (-1e4f32..1e4, -1e4f32..1e4, any::<u32>(), 0f32..=1.0).prop_map(|(x, y, t_ms, pressure)| StrokePoint { x, y, t_ms, pressure })
    }

    proptest! {
        #[test]
        fn encoding_round_trips(strokes in proptest::collection::vec(proptest::collection::vec(point(), 1..40), 0..8)) {
            let bytes = encode(&strokes).unwrap();
            prop_assert_eq!(decode(&bytes).unwrap(), strokes.clone());
            // Canonical: encoding the decoded strokes gives the same bytes.
            prop_assert_eq!(encode(&decode(&bytes).unwrap()).unwrap(), bytes);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            let mut prefixed = MAGIC.to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = decode(&prefixed);
        }
    }

    #[test]
    fn renderings_are_deterministic_and_show_ink() {
        let strokes = sample_strokes();
        let svg = render_svg(&strokes);
        assert_eq!(svg, render_svg(&decode(&encode(&strokes).unwrap()).unwrap()));
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.starts_with("<svg") && svg.contains("#1a237e"));
        let png = render_png(&strokes, 600, 240).unwrap();
        assert_eq!(png, render_png(&strokes, 600, 240).unwrap());
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        let ink = img.pixels().filter(|p| p.0 == INK).count();
        assert!(ink > 500 && ink < (img.width() * img.height()) as usize / 2, "{ink} ink pixels");
        // Another signature renders differently.
        let mut other = strokes.clone();
        other[1][3].y += 10.0;
        assert_ne!(render_svg(&other), svg);
        assert!(render_png(&[], 10, 10).is_ok(), "no strokes: a blank image, no panic");
    }

    #[test]
    fn bad_strokes_are_refused() {
        assert!(encode(&[vec![]]).is_err());
        let p = StrokePoint { x: f32::NAN, y: 0.0, t_ms: 0, pressure: 0.5 };
        assert!(encode(&[vec![p]]).is_err());
        let ok = encode(&[vec![StrokePoint { x: 1.0, y: 2.0, t_ms: 3, pressure: 0.5 }]]).unwrap();
        assert!(decode(&ok[..ok.len() - 1]).is_err());
        let mut long = ok.clone();
        long.push(0);
        assert!(decode(&long).is_err());
    }
}
