//! Signature strokes (customer signatures on consents and receipts) as data: points with
//! time and pressure, in one canonical binary encoding so their hash is stable.
//!
//! Encoding v1: `b"OSS1"`, u16 stroke count, then per stroke a u16 point count and per point
//! x, y (f32, in the pad's points), t (u32, ms since the first point of the signature) and
//! pressure (f32, 0..1), all little-endian. Limits: 64 strokes, 4096 points per stroke.

use serde::Serialize;

const MAGIC: &[u8; 4] = b"OSS1";
pub const MAX_STROKES: usize = 64;
pub const MAX_POINTS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
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
            if !(p.x.is_finite() && p.y.is_finite() && p.pressure.is_finite()) || !(0.0..=1.0).contains(&p.pressure) {
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
