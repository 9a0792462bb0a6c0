//! EXIF as a camera writes it and as a hostile file breaks it: read field by field, keeping
//! what is readable (capture time, GPS, make, model, orientation) and reporting the rest.

use super::ExifInfo;

/// Problems listed one by one before they are summed up.
const MAX_EXIF_PROBLEMS: usize = 4;

pub(super) fn read_exif(raw: Vec<u8>, problems: &mut Vec<String>) -> ExifInfo {
    use ::exif::{In, Tag, Value};
    // Field by field: a bad pointer or entry costs that part, never the rest (exiftool reads
    // such files too). What could not be read is reported.
    let mut partial = Vec::new();
    let exif = match ::exif::Reader::new().continue_on_error(true).read_raw(raw).or_else(|e| e.distill_partial_result(|errors| partial = errors)) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("EXIF unreadable: {e}"));
            return ExifInfo::default();
        }
    };
    for e in partial.iter().take(MAX_EXIF_PROBLEMS) {
        problems.push(format!("EXIF partly unreadable: {e}"));
    }
    if partial.len() > MAX_EXIF_PROBLEMS {
        problems.push(format!("EXIF partly unreadable: {} more problems", partial.len() - MAX_EXIF_PROBLEMS));
    }
    let text = |tag: Tag| -> Option<String> {
        exif.get_field(tag, In::PRIMARY).and_then(|f| match &f.value {
            Value::Ascii(v) => v.first().map(|s| String::from_utf8_lossy(s).trim().trim_end_matches('\0').to_string()),
            _ => None,
        })
    };
    let coord = |tag: Tag, reference: Tag| -> Option<f64> {
        let f = exif.get_field(tag, In::PRIMARY)?;
        let Value::Rational(r) = &f.value else { return None };
        if r.len() < 3 || r.iter().any(|x| x.denom == 0) {
            return None;
        }
        let v = r[0].to_f64() + r[1].to_f64() / 60.0 + r[2].to_f64() / 3600.0;
        let neg = matches!(text(reference).as_deref(), Some("S") | Some("W"));
        let v = if neg { -v } else { v };
        v.is_finite().then_some(v)
    };
    let orientation = exif.get_field(Tag::Orientation, In::PRIMARY).and_then(|f| f.value.get_uint(0)).map(|v| v as u16);
    let info = ExifInfo {
        captured_at: text(Tag::DateTimeOriginal).or_else(|| text(Tag::DateTime)),
        offset: text(Tag::OffsetTimeOriginal),
        lat: coord(Tag::GPSLatitude, Tag::GPSLatitudeRef).filter(|v| (-90.0..=90.0).contains(v)),
        lon: coord(Tag::GPSLongitude, Tag::GPSLongitudeRef).filter(|v| (-180.0..=180.0).contains(v)),
        make: text(Tag::Make),
        model: text(Tag::Model),
        orientation: orientation.filter(|o| (1..=8).contains(o)),
    };
    if orientation.is_some() && info.orientation.is_none() {
        problems.push("EXIF orientation out of range; ignored".into());
    }
    info
}
