//! JPEG decoding for the thumbnail and the perceptual hash.
//!
//! libjpeg-turbo's decoder (as vendored by mozjpeg-sys, built from C by `cc`) does the work:
//! it scales during the IDCT (a 12 MP photo decodes straight to 1/8), streams from the file
//! through a `BufRead` (constant memory for baseline JPEGs) and reads arithmetic-coded files.
//! Its fatal errors unwind as a `String` payload (never through the panic hook); they are
//! caught here and reported. CMYK/YCCK JPEGs (print workflows, not cameras), which libjpeg
//! will not convert to RGB, go through jpeg-decoder, which does.

use std::io::{BufRead, BufReader, Read};

use super::{finish, read_exif, Analysis, Limits, PhotoInput, Small, THUMB_EDGE};

/// Decodes the JPEG `input` opens, streaming it (the header is read once more for the bounds).
pub(super) fn from_input(input: &dyn PhotoInput, limits: &Limits, a: &mut Analysis) -> Result<(), String> {
    let mut head = Vec::new();
    input.open().map_err(|e| e.to_string())?.take(HEADER_SCAN).read_to_end(&mut head).map_err(|e| e.to_string())?;
    let open = || input.open().map(|f| BufReader::with_capacity(64 * 1024, f)).map_err(|e| e.to_string());
    match turbo(open()?, &head, limits, a)? {
        Outcome::Done => Ok(()),
        Outcome::NeedsCmyk => jpeg_decode(jpeg_decoder::Decoder::new(open()?), &head, limits, a),
    }
}

/// [`from_path`] for bytes in memory (the fuzz target's entry).
pub(super) fn from_bytes(bytes: &[u8], limits: &Limits, a: &mut Analysis) -> Result<(), String> {
    match turbo(bytes, bytes, limits, a)? {
        Outcome::Done => Ok(()),
        Outcome::NeedsCmyk => jpeg_decode(jpeg_decoder::Decoder::new(bytes), bytes, limits, a),
    }
}

enum Outcome {
    Done,
    /// A CMYK or YCCK JPEG: libjpeg does not convert it to RGB.
    NeedsCmyk,
}

/// The smallest libjpeg scale (n/8) whose long edge still reaches the thumbnail's (or the
/// whole image, when it is smaller).
pub(super) fn scale_numerator(w: u32, h: u32) -> u8 {
    let long = u64::from(w.max(h));
    let want = long.min(u64::from(THUMB_EDGE));
    [1u8, 2, 4].into_iter().find(|&n| (long * u64::from(n)).div_ceil(8) >= want).unwrap_or(8)
}

fn turbo<R: BufRead>(reader: R, head: &[u8], limits: &Limits, a: &mut Analysis) -> Result<Outcome, String> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| turbo_inner(reader, head, limits, a)));
    match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("the decoder failed")
                .trim_start_matches("libjpeg fatal error: ")
                .to_string();
            Err(format!("no thumbnail: corrupt JPEG ({msg})"))
        }
    }
}

fn turbo_inner<R: BufRead>(reader: R, head: &[u8], limits: &Limits, a: &mut Analysis) -> Result<Outcome, String> {
    let mut d =
        mozjpeg::Decompress::builder().with_markers(&[mozjpeg::Marker::APP(1)]).from_reader(reader).map_err(|e| format!("no thumbnail: corrupt JPEG ({e})"))?;
    let (w, h) = (u32::try_from(d.width()).unwrap_or(u32::MAX), u32::try_from(d.height()).unwrap_or(u32::MAX));
    if matches!(d.color_space(), mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK) {
        return Ok(Outcome::NeedsCmyk);
    }
    a.width = Some(w);
    a.height = Some(h);
    if let Some(m) = d.markers().find(|m| m.data.starts_with(b"Exif\0\0")) {
        a.exif = read_exif(m.data[6..].to_vec(), &mut a.problems);
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels == 0 || pixels > limits.max_pixels {
        return Err(format!("no thumbnail: image too large to decode safely ({w}x{h})"));
    }
    if is_progressive(head) {
        let need = progressive_coefficient_bytes(head).unwrap_or(pixels * 6);
        if need > limits.max_progressive_bytes {
            return Err(format!("no thumbnail: progressive image too large to decode safely ({w}x{h}, {} MB of coefficients)", need >> 20));
        }
    }
    d.scale(scale_numerator(w, h));
    let mut started = d.rgb().map_err(|e| format!("no thumbnail: corrupt JPEG ({e})"))?;
    let (sw, sh) = (started.width(), started.height());
    if sw == 0 || sh == 0 || sw.saturating_mul(sh).saturating_mul(3) > limits.max_decode_bytes {
        return Err(format!("no thumbnail: scaled image too large ({sw}x{sh})"));
    }
    let rgb: Vec<u8> = started.read_scanlines().map_err(|e| format!("no thumbnail: corrupt JPEG ({e})"))?;
    // Dropped without `finish`: what follows the last scan line is not needed.
    drop(started);
    if rgb.len() != sw * sh * 3 {
        return Err("no thumbnail: decoder returned an unexpected buffer".into());
    }
    finish(Small { w: sw as u32, h: sh as u32, rgb }, a)?;
    Ok(Outcome::Done)
}

/// Whether the first frame header in `head` is progressive (SOF2, SOF6, SOF10, SOF14).
fn is_progressive(head: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= head.len() && head[i] == 0xFF {
        let marker = head[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            return matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
        }
        if marker == 0xDA || marker == 0xD9 {
            return false;
        }
        i += 2 + usize::from(u16::from_be_bytes([head[i + 2], head[i + 3]]));
    }
    // No frame header within the scan: assume the worst.
    true
}

/// How far into a JPEG its frame header is looked for (APP segments come first; each is at
/// most 64 KB).
const HEADER_SCAN: u64 = 512 * 1024;

/// The bytes of DCT coefficients a progressive decode buffers: per component, its blocks
/// (padded to whole MCUs) x 64 coefficients x 2 bytes, from the SOF2 header in `head`.
/// `None` when the header cannot be read (the caller then assumes the worst, 4:4:4).
pub fn progressive_coefficient_bytes(head: &[u8]) -> Option<u64> {
    let mut i = 2;
    while i + 4 <= head.len() {
        if head[i] != 0xFF {
            return None;
        }
        let marker = head[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([head[i + 2], head[i + 3]]));
        let seg = head.get(i + 4..i + 2 + len)?;
        match marker {
            0xC2 => {
                let (h, w, n) = (
                    u64::from(u16::from_be_bytes([*seg.get(1)?, *seg.get(2)?])),
                    u64::from(u16::from_be_bytes([*seg.get(3)?, *seg.get(4)?])),
                    *seg.get(5)? as usize,
                );
                let comps: Vec<(u64, u64)> =
                    (0..n).map(|c| seg.get(6 + 3 * c + 1).map(|hv| (u64::from(hv >> 4).max(1), u64::from(hv & 15).max(1)))).collect::<Option<_>>()?;
                let (hmax, vmax) = comps.iter().fold((1, 1), |(a, b), (h, v)| (a.max(*h), b.max(*v)));
                let (mcus_x, mcus_y) = (w.div_ceil(8 * hmax), h.div_ceil(8 * vmax));
                return Some(comps.iter().map(|(ch, cv)| mcus_x * ch * mcus_y * cv * 64 * 2).sum());
            }
            0xDA | 0xD9 => return None,
            _ => i += 2 + len,
        }
    }
    None
}

fn jpeg_decode<R: Read>(mut dec: jpeg_decoder::Decoder<R>, head: &[u8], limits: &Limits, a: &mut Analysis) -> Result<(), String> {
    dec.read_info().map_err(|e| format!("no thumbnail: corrupt JPEG ({e})"))?;
    let info = dec.info().ok_or("no thumbnail: corrupt JPEG (no frame)")?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    a.width = Some(w);
    a.height = Some(h);
    let pixels = u64::from(w) * u64::from(h);
    if pixels == 0 || pixels > limits.max_pixels {
        return Err(format!("no thumbnail: image too large to decode safely ({w}x{h})"));
    }
    if info.coding_process == jpeg_decoder::CodingProcess::DctProgressive {
        let need = progressive_coefficient_bytes(head).unwrap_or(pixels * 6);
        if need > limits.max_progressive_bytes {
            return Err(format!("no thumbnail: progressive image too large to decode safely ({w}x{h}, {} MB of coefficients)", need >> 20));
        }
    }
    dec.set_max_decoding_buffer_size(limits.max_decode_bytes);
    let (sw, sh) = dec.scale(THUMB_EDGE as u16, THUMB_EDGE as u16).map_err(|e| format!("no thumbnail: corrupt JPEG ({e})"))?;
    let decoded = dec.decode();
    if let Some(raw) = dec.exif_data() {
        a.exif = read_exif(raw.to_vec(), &mut a.problems);
    }
    let data = decoded.map_err(|e| format!("no thumbnail: corrupt JPEG ({e})"))?;
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => data,
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
        jpeg_decoder::PixelFormat::L16 => data.chunks_exact(2).flat_map(|c| [c[0], c[0], c[0]]).collect(),
        jpeg_decoder::PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|c| {
                let k = 255 - u16::from(c[3]);
                let f = |x: u8| ((255 - u16::from(x)) * k / 255) as u8;
                [f(c[0]), f(c[1]), f(c[2])]
            })
            .collect(),
    };
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    if rgb.len() != (sw * sh * 3) as usize {
        return Err("no thumbnail: decoder returned an unexpected buffer".into());
    }
    finish(Small { w: sw, h: sh, rgb }, a)
}
