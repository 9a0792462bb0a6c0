//! Photo analysis: format, EXIF, a 320 px thumbnail with the orientation applied, and a
//! 64-bit perceptual hash (dHash). Never fails on bad pictures: a photo is evidence even
//! when it cannot be decoded, so problems are reported and the result degrades.
//!
//! Fast path (camera JPEGs, `jpeg.rs`): libjpeg-turbo's DCT-scaled decode (1/2..1/8 during
//! the IDCT, so a 12 MP photo decodes straight to ~0.2 MP), streamed from the file, then
//! fast_image_resize to 320 px. Memory stays bounded: dimensions are read from the header and
//! refused before any pixel buffer is allocated, and progressive coefficient buffers are
//! bounded from the frame header.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use fast_image_resize as fr;

mod exif;
mod jpeg;
pub use jpeg::progressive_coefficient_bytes;
#[cfg(test)]
mod formats_tests;
use exif::read_exif;
use serde::Serialize;

pub const THUMB_EDGE: u32 = 320;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest image (pixels) the fast path decodes.
    pub max_pixels: u64,
    /// Largest coefficient buffer of a progressive JPEG (the decoder holds every DCT
    /// coefficient until the last scan): 48 MB is a 16 MP 4:2:0 camera photo, or 8 MP 4:4:4.
    pub max_progressive_bytes: u64,
    /// Cap on the decoder's output buffer.
    pub max_decode_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_pixels: 64_000_000, max_progressive_bytes: 48 << 20, max_decode_bytes: 24 * 1024 * 1024 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Jpeg,
    Png,
    Webp,
    Tiff,
    /// HEIF with HEVC (the iPhone camera's default).
    Heic,
    /// HEIF with AV1.
    Avif,
    Unknown,
}

impl Format {
    pub const ALL: [Format; 7] = [Format::Jpeg, Format::Png, Format::Webp, Format::Tiff, Format::Heic, Format::Avif, Format::Unknown];

    /// The JSON spelling (stored in the photo row and journaled).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Tiff => "tiff",
            Format::Heic => "heic",
            Format::Avif => "avif",
            Format::Unknown => "unknown",
        }
    }

    /// Decoded by the core itself on every platform (the rest need a [`PlatformDecoder`]).
    pub fn decoded_here(self) -> bool {
        matches!(self, Format::Jpeg | Format::Png | Format::Webp | Format::Tiff)
    }
}

/// An image the platform decoded for the core (ImageIO on iOS, ImageDecoder/BitmapFactory on
/// Android): the original size, and pixels at a reduced size with the orientation applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    pub small_width: u32,
    pub small_height: u32,
    /// RGB, 3 bytes per pixel, `small_width * small_height * 3` bytes.
    pub rgb: Vec<u8>,
}

/// Decodes what the core cannot (HEIC, AVIF; DNG...): the platform's own codecs. The core
/// still hashes the original bytes; from the small image it makes the thumbnail and the
/// perceptual hash, so the reuse check sees every photo a phone takes.
pub trait PlatformDecoder: Send + Sync {
    /// `Ok(None)`: the platform cannot decode this either. `max_edge`: the long edge the
    /// small image should have (at least; the core scales it down further).
    fn decode(&self, path: &Path, format: Format, max_edge: u32) -> Result<Option<Decoded>, String>;
}

/// Long edge asked of a platform decoder (twice the thumbnail's, for a sharp downscale).
pub const PLATFORM_EDGE: u32 = 2 * THUMB_EDGE;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExifInfo {
    /// `DateTimeOriginal` as written by the camera (local time, "YYYY:MM:DD HH:MM:SS").
    pub captured_at: Option<String>,
    pub offset: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub make: Option<String>,
    pub model: Option<String>,
    /// EXIF orientation 1..8.
    pub orientation: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub format: Format,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub exif: ExifInfo,
    /// JPEG bytes of the thumbnail (long edge 320 px), orientation applied.
    #[serde(skip)]
    pub thumbnail: Option<Vec<u8>>,
    pub thumb_width: u32,
    pub thumb_height: u32,
    /// dHash of the oriented image.
    pub phash: Option<u64>,
    /// Why something is missing ("no thumbnail: unsupported format (HEIC)", "EXIF: ...").
    pub problems: Vec<String>,
}

/// Bytes [`sniff`] looks at.
pub const SNIFF_BYTES: usize = 64;

/// The format from the first bytes. HEIF files name their codec in the `ftyp` box: the major
/// brand, or for the generic `mif1`/`msf1` the compatible brands (`avif` before `heic`).
pub fn sniff(head: &[u8]) -> Format {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Format::Jpeg
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Format::Png
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Format::Webp
    } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        Format::Tiff
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = size.clamp(16, head.len().max(16)).min(head.len());
        let compatible: Vec<&[u8]> = head.get(16..end).unwrap_or(&[]).chunks_exact(4).collect();
        let brand = |b: &[u8]| -> Option<Format> {
            match b {
                b"avif" | b"avis" => Some(Format::Avif),
                b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" => Some(Format::Heic),
                _ => None,
            }
        };
        brand(&head[8..12]).or_else(|| compatible.iter().find_map(|b| brand(b))).unwrap_or(if matches!(&head[8..12], b"mif1" | b"msf1") {
            Format::Heic
        } else {
            Format::Unknown
        })
    } else {
        Format::Unknown
    }
}

/// Where a photo's bytes are read from: a file, or a stored blob (decrypted as it is read).
pub trait PhotoInput {
    /// The bytes from the start; may be called more than once.
    fn open(&self) -> std::io::Result<Box<dyn crate::evidence::blob::BlobRead>>;
    /// A plain file with the same bytes, for the platform decoder (it reads a path); the
    /// returned guard removes a temp copy when dropped.
    fn plain_file(&self) -> std::io::Result<PlainFile>;
}

/// A path to plain bytes; a temp copy is removed on drop.
pub struct PlainFile {
    pub path: std::path::PathBuf,
    pub temporary: bool,
}

impl Drop for PlainFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl PhotoInput for std::path::PathBuf {
    fn open(&self) -> std::io::Result<Box<dyn crate::evidence::blob::BlobRead>> {
        Ok(Box::new(File::open(self)?))
    }

    fn plain_file(&self) -> std::io::Result<PlainFile> {
        Ok(PlainFile { path: self.to_path_buf(), temporary: false })
    }
}

/// Analyses the photo at `path` (already stored); never panics, never fails on content.
pub fn analyze(path: &Path, limits: &Limits) -> std::io::Result<Analysis> {
    analyze_with(&path.to_path_buf(), limits, None)
}

/// [`analyze`], handing formats the core does not decode to the platform's decoder.
pub fn analyze_with(input: &dyn PhotoInput, limits: &Limits, platform: Option<&dyn PlatformDecoder>) -> std::io::Result<Analysis> {
    let mut head = [0u8; SNIFF_BYTES];
    let mut n = 0;
    let mut first = input.open()?;
    while n < SNIFF_BYTES {
        match first.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    drop(first);
    let open = || input.open().map(BufReader::new).map_err(|e| e.to_string());
    Ok(guarded(sniff(&head[..n]), platform.is_some(), |format, a| match format {
        Format::Jpeg => jpeg::from_input(input, limits, a),
        Format::Png => image_decode(open()?, image::ImageFormat::Png, limits, a),
        Format::Webp => image_decode(open()?, image::ImageFormat::WebP, limits, a),
        Format::Tiff => image_decode(open()?, image::ImageFormat::Tiff, limits, a),
        Format::Heic | Format::Avif | Format::Unknown => match platform {
            Some(p) => platform_decode(p, &input.plain_file().map_err(|e| e.to_string())?.path, format, limits, a),
            None => Ok(()),
        },
    }))
}

/// Checks what the platform returned as strictly as any decoder's output.
fn platform_decode(p: &dyn PlatformDecoder, path: &Path, format: Format, limits: &Limits, a: &mut Analysis) -> Result<(), String> {
    let name = format.as_str().to_uppercase();
    let d = p.decode(path, format, PLATFORM_EDGE)?.ok_or_else(|| format!("no thumbnail: the platform cannot decode this {name}"))?;
    if d.width == 0 || d.height == 0 || u64::from(d.width) * u64::from(d.height) > limits.max_pixels {
        return Err(format!("no thumbnail: the platform reported {}x{}", d.width, d.height));
    }
    let small_ok = d.small_width > 0 && d.small_height > 0 && d.small_width <= 4 * PLATFORM_EDGE && d.small_height <= 4 * PLATFORM_EDGE;
    if !small_ok || d.rgb.len() as u64 != u64::from(d.small_width) * u64::from(d.small_height) * 3 {
        return Err("no thumbnail: the platform returned an unexpected buffer".into());
    }
    a.width = Some(d.width);
    a.height = Some(d.height);
    finish(Small { w: d.small_width, h: d.small_height, rgb: d.rgb }, a)
}

/// Runs a decoder for `format` with the problems every path shares, catching panics from
/// third-party decoders on hostile bytes (the result degrades; nothing unwinds further).
fn guarded(format: Format, platform: bool, decode: impl FnOnce(Format, &mut Analysis) -> Result<(), String>) -> Analysis {
    let mut a = Analysis {
        format,
        width: None,
        height: None,
        exif: ExifInfo::default(),
        thumbnail: None,
        thumb_width: 0,
        thumb_height: 0,
        phash: None,
        problems: Vec::new(),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match format {
        Format::Heic | Format::Avif if !platform => {
            Err(format!("no thumbnail: unsupported format ({}) without the platform's decoder", format.as_str().to_uppercase()))
        }
        Format::Unknown if !platform => Err("no thumbnail: unrecognized format".to_string()),
        _ => decode(format, &mut a),
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(problem)) => a.problems.push(problem),
        Err(_) => a.problems.push("no thumbnail: the decoder failed on this file".into()),
    }
    a
}

/// Analyses photo bytes held in memory (the fuzz target's entry; same rules as `analyze`).
pub fn analyze_bytes(bytes: &[u8], limits: &Limits) -> Analysis {
    guarded(sniff(&bytes[..bytes.len().min(SNIFF_BYTES)]), false, |format, a| match format {
        Format::Jpeg => jpeg::from_bytes(bytes, limits, a),
        Format::Png => image_decode(std::io::Cursor::new(bytes), image::ImageFormat::Png, limits, a),
        Format::Webp => image_decode(std::io::Cursor::new(bytes), image::ImageFormat::WebP, limits, a),
        Format::Tiff => image_decode(std::io::Cursor::new(bytes), image::ImageFormat::Tiff, limits, a),
        Format::Heic | Format::Avif | Format::Unknown => Ok(()),
    })
}

/// Decoded pixels at reduced size, before orientation.
struct Small {
    w: u32,
    h: u32,
    rgb: Vec<u8>,
}

/// PNG, WebP and TIFF through the `image` crate, with its allocation and size limits.
fn image_decode<R: std::io::BufRead + std::io::Seek>(input: R, format: image::ImageFormat, limits: &Limits, a: &mut Analysis) -> Result<(), String> {
    let mut reader = image::ImageReader::with_format(input, format);
    let mut l = image::Limits::default();
    l.max_alloc = Some(48 * 1024 * 1024);
    l.max_image_width = Some(20_000);
    l.max_image_height = Some(20_000);
    reader.limits(l);
    let name = format!("{format:?}").to_uppercase();
    let img = reader.decode().map_err(|e| format!("no thumbnail: {name} not decoded ({e})"))?;
    a.width = Some(img.width());
    a.height = Some(img.height());
    if u64::from(img.width()) * u64::from(img.height()) > limits.max_pixels {
        return Err("no thumbnail: image too large".into());
    }
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    finish(Small { w, h, rgb: rgb.into_raw() }, a)
}

fn finish(small: Small, a: &mut Analysis) -> Result<(), String> {
    let (tw, th) = fit(small.w, small.h, THUMB_EDGE);
    let src = fr::images::Image::from_vec_u8(small.w, small.h, small.rgb, fr::PixelType::U8x3).map_err(|e| format!("no thumbnail: {e}"))?;
    let mut dst = fr::images::Image::new(tw, th, fr::PixelType::U8x3);
    let opts = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
    fr::Resizer::new().resize(&src, &mut dst, &opts).map_err(|e| format!("no thumbnail: {e}"))?;
    let (ow, oh, oriented) = orient(tw, th, dst.buffer(), a.exif.orientation.unwrap_or(1));
    a.phash = Some(dhash(ow, oh, &oriented));
    let mut out = Vec::with_capacity(32 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode(&oriented, ow, oh, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("no thumbnail: {e}"))?;
    a.thumbnail = Some(out);
    a.thumb_width = ow;
    a.thumb_height = oh;
    Ok(())
}

/// Largest size with the same aspect whose long edge is at most `edge` (never upscales).
pub fn fit(w: u32, h: u32, edge: u32) -> (u32, u32) {
    let long = w.max(h);
    if long <= edge {
        return (w.max(1), h.max(1));
    }
    let scale = f64::from(edge) / f64::from(long);
    (((f64::from(w) * scale).round() as u32).max(1), ((f64::from(h) * scale).round() as u32).max(1))
}

/// Applies EXIF orientation (1..8) to an RGB buffer.
pub fn orient(w: u32, h: u32, rgb: &[u8], orientation: u16) -> (u32, u32, Vec<u8>) {
    let (w, h) = (w as usize, h as usize);
    let transposed = matches!(orientation, 5..=8);
    let (ow, oh) = if transposed { (h, w) } else { (w, h) };
    let mut out = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            // Where the source pixel (x, y) lands.
            let (dx, dy) = match orientation {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (h - 1 - y, x),
                7 => (h - 1 - y, w - 1 - x),
                8 => (y, w - 1 - x),
                _ => (x, y),
            };
            let s = (y * w + x) * 3;
            let d = (dy * ow + dx) * 3;
            out[d..d + 3].copy_from_slice(&rgb[s..s + 3]);
        }
    }
    (ow as u32, oh as u32, out)
}

/// dHash: 9x8 grey box-averaged image, one bit per horizontal neighbour comparison.
pub fn dhash(w: u32, h: u32, rgb: &[u8]) -> u64 {
    let (w, h) = (w as usize, h as usize);
    let mut grey = [[0f64; 9]; 8];
    for (gy, row) in grey.iter_mut().enumerate() {
        for (gx, cell) in row.iter_mut().enumerate() {
            let (x0, x1) = (gx * w / 9, ((gx + 1) * w / 9).max(gx * w / 9 + 1).min(w));
            let (y0, y1) = (gy * h / 8, ((gy + 1) * h / 8).max(gy * h / 8 + 1).min(h));
            let (mut sum, mut n) = (0f64, 0f64);
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = (y * w + x) * 3;
                    sum += 0.299 * f64::from(rgb[p]) + 0.587 * f64::from(rgb[p + 1]) + 0.114 * f64::from(rgb[p + 2]);
                    n += 1.0;
                }
            }
            *cell = if n > 0.0 { sum / n } else { 0.0 };
        }
    }
    let mut bits = 0u64;
    for row in &grey {
        for x in 0..8 {
            bits = (bits << 1) | u64::from(row[x] < row[x + 1]);
        }
    }
    bits
}

pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// A photo as recorded on an order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhotoRecord {
    pub order_id: String,
    pub sha256: String,
    pub step: Option<String>,
    pub phash: Option<u64>,
    pub format: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub size: u64,
    pub exif: serde_json::Value,
    pub thumb_sha256: Option<String>,
    pub problems: Vec<String>,
    pub ingested_at: i64,
    pub journal_seq: u64,
}

/// The same or a near-identical photo already used on another order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReuseHit {
    pub order_id: String,
    pub sha256: String,
    /// Hamming distance of the perceptual hashes (0: identical bytes or look).
    pub distance: u32,
}

#[cfg(test)]
pub(crate) mod tests;
