//! Signature strokes at the boundary: the records a signature pad hands over, their
//! conversion to the core's strokes, and previews. Encoding and hashing are the core's
//! (`onsite_core::signature`, `Answer::consent`).

use crate::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct StrokePoint {
    pub x: f32,
    pub y: f32,
    pub t_ms: u32,
    pub pressure: f32,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Stroke {
    pub points: Vec<StrokePoint>,
}

pub(crate) fn strokes_in(strokes: Vec<Stroke>) -> Vec<onsite_core::signature::Stroke> {
    strokes
        .into_iter()
        .map(|s| s.points.into_iter().map(|p| onsite_core::signature::StrokePoint { x: p.x, y: p.y, t_ms: p.t_ms, pressure: p.pressure }).collect())
        .collect()
}

/// Encoded strokes (as stored in a consent answer) for display. Strokes another device
/// wrote that do not decode show as none, with a warning; the raw bytes and their hash
/// stay in the document, where the verifier checks them.
pub(crate) fn strokes_out(encoded: &[u8]) -> Vec<Stroke> {
    match onsite_core::signature::decode(encoded) {
        Ok(strokes) => strokes
            .into_iter()
            .map(|s| Stroke { points: s.into_iter().map(|p| StrokePoint { x: p.x, y: p.y, t_ms: p.t_ms, pressure: p.pressure }).collect() })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "consent strokes do not decode; shown as none");
            Vec::new()
        }
    }
}

/// Renders signature strokes as a PNG (ink on white) for a preview.
#[uniffi::export]
pub fn render_signature_png(strokes: Vec<Stroke>, max_width: u32, max_height: u32) -> Result<Vec<u8>, ApiError> {
    let strokes = strokes_in(strokes);
    onsite_core::signature::encode(&strokes)?;
    Ok(onsite_core::signature::render_png(&strokes, max_width.clamp(1, 4096), max_height.clamp(1, 4096))?)
}

/// Renders signature strokes as the deterministic SVG that bundles carry.
#[uniffi::export]
pub fn render_signature_svg(strokes: Vec<Stroke>) -> Result<String, ApiError> {
    let strokes = strokes_in(strokes);
    onsite_core::signature::encode(&strokes)?;
    Ok(onsite_core::signature::render_svg(&strokes))
}
