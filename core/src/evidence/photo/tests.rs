//! Photo analysis: thumbnails, EXIF, orientation, hashes, bad inputs.
use super::*;

/// A JPEG made here: gradient + shapes, optional EXIF APP1 segment.
pub fn make_jpeg(w: u32, h: u32, seed: u8, exif: Option<&[u8]>) -> Vec<u8> {
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 3) as usize;
            let disc = ((x as i64 - w as i64 / 3).pow(2) + (y as i64 - h as i64 / 2).pow(2)) < (h as i64 / 4).pow(2);
            rgb[i] = (x * 255 / w) as u8 ^ seed;
            rgb[i + 1] = if disc { 230 } else { (y * 255 / h) as u8 };
            rgb[i + 2] = seed.wrapping_mul(3);
        }
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode(&rgb, w, h, image::ExtendedColorType::Rgb8).unwrap();
    if let Some(exif) = exif {
        // Insert APP1 right after SOI.
        let mut seg = vec![0xFF, 0xE1];
        let len = (exif.len() + 2 + 6) as u16;
        seg.extend_from_slice(&len.to_be_bytes());
        seg.extend_from_slice(b"Exif\0\0");
        seg.extend_from_slice(exif);
        out.splice(2..2, seg);
    }
    out
}

/// A little-endian TIFF with Orientation and Make.
pub fn exif_orientation(o: u16) -> Vec<u8> {
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    t.extend_from_slice(&2u16.to_le_bytes()); // 2 entries
                                              // Make (0x010F), ASCII, count 5, offset 38
    t.extend_from_slice(&0x010Fu16.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&5u32.to_le_bytes());
    t.extend_from_slice(&38u32.to_le_bytes());
    // Orientation (0x0112), SHORT, count 1, value
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&(o as u32).to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes()); // next IFD
    t.extend_from_slice(b"ACME\0");
    t
}

/// IFD0 with Make, Orientation and an Exif sub-IFD pointer far past the end (what some
/// phone editors leave behind).
pub fn exif_bad_subifd(o: u16) -> Vec<u8> {
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    t.extend_from_slice(&3u16.to_le_bytes());
    for (tag, ty, count, value) in [(0x010Fu16, 2u16, 5u32, 50u32), (0x0112, 3, 1, u32::from(o)), (0x8769, 4, 1, 0x00FF_FF00)] {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&ty.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    }
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(b"ACME\0");
    t
}

#[test]
fn a_bad_sub_ifd_pointer_costs_that_part_only() {
    let a = analyze_bytes(&make_jpeg(640, 480, 5, Some(&exif_bad_subifd(6))));
    assert_eq!(a.exif.make.as_deref(), Some("ACME"), "{:?}", a.problems);
    assert_eq!(a.exif.orientation, Some(6));
    assert_eq!((a.thumb_width, a.thumb_height), (240, 320), "orientation applied");
    assert!(a.problems.iter().any(|p| p.starts_with("EXIF partly unreadable")), "{:?}", a.problems);
}

fn analyze_bytes(bytes: &[u8]) -> Analysis {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, bytes).unwrap();
    analyze(&p, &Limits::default()).unwrap()
}

#[test]
fn jpeg_gets_thumbnail_exif_and_orientation() {
    let a = analyze_bytes(&make_jpeg(1600, 1200, 7, Some(&exif_orientation(6))));
    assert_eq!(a.format, Format::Jpeg);
    assert_eq!((a.width, a.height), (Some(1600), Some(1200)));
    assert_eq!(a.exif.make.as_deref(), Some("ACME"));
    assert_eq!(a.exif.orientation, Some(6));
    assert_eq!((a.thumb_width, a.thumb_height), (240, 320), "rotated 90 degrees");
    let thumb = image::load_from_memory(a.thumbnail.as_ref().unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (240, 320));
    assert!(a.problems.is_empty(), "{:?}", a.problems);
}

#[test]
fn near_duplicates_have_close_hashes_and_different_photos_do_not() {
    let a = analyze_bytes(&make_jpeg(1200, 900, 7, None)).phash.unwrap();
    let recompressed = {
        let img = image::load_from_memory(&make_jpeg(1200, 900, 7, None)).unwrap().resize(800, 600, image::imageops::FilterType::Triangle);
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 60).encode_image(&img.to_rgb8()).unwrap();
        out
    };
    let b = analyze_bytes(&recompressed).phash.unwrap();
    let c = analyze_bytes(&make_jpeg(1200, 900, 200, None)).phash.unwrap();
    assert!(hamming(a, b) <= 6, "resized+recompressed copy: {}", hamming(a, b));
    assert!(hamming(a, c) > 10, "different photo: {}", hamming(a, c));
}

#[test]
fn bad_inputs_degrade_with_a_reason() {
    let jpeg = make_jpeg(640, 480, 1, None);
    let truncated = analyze_bytes(&jpeg[..jpeg.len() / 2]);
    assert!(truncated.thumbnail.is_none() || !truncated.problems.is_empty() || truncated.phash.is_some());
    let heic = analyze_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic");
    assert_eq!(heic.format, Format::Heic);
    assert_eq!(heic.problems, ["no thumbnail: unsupported format (HEIC) without the platform's decoder"]);
    // A 60000x60000 header: refused before any pixel buffer exists.
    let mut bomb = jpeg.clone();
    let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bomb[sof + 5..sof + 7].copy_from_slice(&60000u16.to_be_bytes());
    bomb[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
    let a = analyze_bytes(&bomb);
    assert!(a.problems[0].contains("too large"), "{:?}", a.problems);
    let png = {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(500, 100, image::Rgb([10, 20, 30])).write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    };
    let a = analyze_bytes(&png);
    assert_eq!((a.format, a.thumb_width, a.thumb_height), (Format::Png, 320, 64));
    let junk = analyze_bytes(b"hello, this is not a photo");
    assert_eq!(junk.problems, ["no thumbnail: unrecognized format"]);
    let garbage_exif = analyze_bytes(&make_jpeg(320, 240, 3, Some(b"II*\0\xff\xff\xff\xffgarbage")));
    assert!(garbage_exif.thumbnail.is_some(), "garbage EXIF is not fatal");
    assert!(garbage_exif.problems.iter().any(|p| p.starts_with("EXIF")), "{:?}", garbage_exif.problems);
}

#[test]
fn orientation_maps_corners() {
    // 2x1 image: red, green. Orientation 6 (rotate 90 CW) -> 1x2: red on top.
    let rgb = [255, 0, 0, 0, 255, 0];
    let (w, h, out) = orient(2, 1, &rgb, 6);
    assert_eq!((w, h), (1, 2));
    assert_eq!(&out[..3], &[255, 0, 0]);
    let (_, _, out) = orient(2, 1, &rgb, 8);
    assert_eq!(&out[..3], &[0, 255, 0]);
    let (_, _, out) = orient(2, 1, &rgb, 3);
    assert_eq!(&out[..3], &[0, 255, 0]);
}
