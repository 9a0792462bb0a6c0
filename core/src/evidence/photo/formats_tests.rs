//! Every photo a phone takes gets its thumbnail and perceptual hash: formats decoded here
//! (JPEG, PNG, WebP, TIFF), formats handed to the platform (HEIC, AVIF), and what a lying or
//! absent platform decoder leaves (a reason, never a panic).

use super::tests::make_jpeg;
use super::*;

fn analyze_file(bytes: &[u8], platform: Option<&dyn PlatformDecoder>) -> Analysis {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, bytes).unwrap();
    analyze_with(&p, &Limits::default(), platform).unwrap()
}

fn reencode(jpeg: &[u8], format: image::ImageFormat) -> Vec<u8> {
    let img = image::load_from_memory(jpeg).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.to_rgb8().write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let size = 16 + 4 * compatible.len();
    let mut b = (size as u32).to_be_bytes().to_vec();
    b.extend_from_slice(b"ftyp");
    b.extend_from_slice(major);
    b.extend_from_slice(&[0, 0, 0, 0]);
    for c in compatible {
        b.extend_from_slice(*c);
    }
    b.extend_from_slice(b"\0\0\0\x10metapayload");
    b
}

#[test]
fn formats_are_named_by_their_brands() {
    assert_eq!(sniff(&ftyp(b"avif", &[b"mif1", b"miaf"])), Format::Avif);
    assert_eq!(sniff(&ftyp(b"mif1", &[b"mif1", b"avif"])), Format::Avif, "AVIF in a generic HEIF box");
    assert_eq!(sniff(&ftyp(b"heic", &[b"mif1", b"heic"])), Format::Heic);
    assert_eq!(sniff(&ftyp(b"mif1", &[b"mif1", b"heic"])), Format::Heic);
    assert_eq!(sniff(&ftyp(b"isom", &[b"mp41"])), Format::Unknown, "a video is not a photo");
    assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Format::Webp);
    assert_eq!(sniff(b"II*\0\x08\0\0\0"), Format::Tiff);
    assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Format::Tiff);
    // Truncated and hostile headers do not panic.
    for n in 0..24 {
        let _ = sniff(&ftyp(b"mif1", &[b"avif"])[..n]);
    }
    assert_eq!(sniff(&[0, 0, 0, 0xFF, b'f', b't', b'y', b'p', b'm', b'i', b'f', b'1']), Format::Heic);
}

#[test]
fn a_reused_photo_resaved_as_webp_png_or_tiff_keeps_its_hash() {
    let jpeg = make_jpeg(1200, 900, 9, None);
    let original = analyze_file(&jpeg, None).phash.unwrap();
    for (format, name) in [(image::ImageFormat::WebP, Format::Webp), (image::ImageFormat::Png, Format::Png), (image::ImageFormat::Tiff, Format::Tiff)] {
        let a = analyze_file(&reencode(&jpeg, format), None);
        assert_eq!(a.format, name);
        assert!(a.problems.is_empty(), "{name:?}: {:?}", a.problems);
        assert_eq!((a.width, a.height, a.thumb_width, a.thumb_height), (Some(1200), Some(900), 320, 240));
        assert!(hamming(original, a.phash.unwrap()) <= 4, "{name:?}: {}", hamming(original, a.phash.unwrap()));
    }
}

/// A platform decoder as ImageIO would be: it decodes the file (here a JPEG behind a HEIF
/// header) to a small oriented image.
struct FakePlatform {
    lie: bool,
    refuse: bool,
}

impl PlatformDecoder for FakePlatform {
    fn decode(&self, path: &Path, format: Format, max_edge: u32) -> Result<Option<Decoded>, String> {
        assert!(matches!(format, Format::Heic | Format::Avif | Format::Unknown));
        if self.refuse {
            return Ok(None);
        }
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let jpeg = &bytes[bytes.windows(3).position(|w| w == [0xFF, 0xD8, 0xFF]).ok_or("no image")?..];
        let img = image::load_from_memory(jpeg).map_err(|e| e.to_string())?;
        let small = img.resize(max_edge, max_edge, image::imageops::FilterType::Triangle).to_rgb8();
        let (sw, sh) = small.dimensions();
        let mut rgb = small.into_raw();
        if self.lie {
            rgb.truncate(rgb.len() / 2);
        }
        Ok(Some(Decoded { width: img.width(), height: img.height(), small_width: sw, small_height: sh, rgb }))
    }
}

#[test]
fn heic_and_avif_get_a_thumbnail_and_hash_from_the_platform_or_a_plain_reason() {
    let jpeg = make_jpeg(1600, 1200, 21, None);
    let original = analyze_file(&jpeg, None).phash.unwrap();
    for (brand, format) in [(b"heic", Format::Heic), (b"avif", Format::Avif)] {
        let mut file = ftyp(brand, &[b"mif1"]);
        file.extend_from_slice(&jpeg);
        let without = analyze_file(&file, None);
        assert_eq!(without.format, format);
        assert!(without.phash.is_none() && without.thumbnail.is_none());
        assert_eq!(without.problems, [format!("no thumbnail: unsupported format ({}) without the platform's decoder", format.as_str().to_uppercase())]);
        let with = analyze_file(&file, Some(&FakePlatform { lie: false, refuse: false }));
        assert!(with.problems.is_empty(), "{:?}", with.problems);
        assert_eq!((with.width, with.height, with.thumb_width, with.thumb_height), (Some(1600), Some(1200), 320, 240));
        assert!(hamming(original, with.phash.unwrap()) <= 4, "{}", hamming(original, with.phash.unwrap()));
        let lying = analyze_file(&file, Some(&FakePlatform { lie: true, refuse: false }));
        assert_eq!(lying.problems, ["no thumbnail: the platform returned an unexpected buffer"]);
        assert!(lying.phash.is_none());
        let refusing = analyze_file(&file, Some(&FakePlatform { lie: false, refuse: true }));
        assert!(refusing.problems[0].contains("the platform cannot decode"), "{:?}", refusing.problems);
    }
}

/// An arithmetic-coded JPEG (cjpeg -arithmetic) decodes, and its hash is the hash of the
/// same picture saved as an ordinary baseline JPEG: re-saving does not evade the reuse check.
#[test]
fn an_arithmetic_coded_jpeg_gets_a_thumbnail_and_the_same_hash() {
    let arith = include_bytes!("testdata/arithmetic.jpg");
    let a = analyze_file(arith, None);
    assert!(a.problems.is_empty(), "{:?}", a.problems);
    assert_eq!((a.width, a.height, a.thumb_width, a.thumb_height), (Some(480), Some(360), 320, 240));
    let pixels = {
        let mut d = mozjpeg::Decompress::builder().from_mem(arith).unwrap().rgb().unwrap();
        d.read_scanlines::<u8>().unwrap()
    };
    let mut baseline = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut baseline, 90).encode(&pixels, 480, 360, image::ExtendedColorType::Rgb8).unwrap();
    let b = analyze_file(&baseline, None);
    assert!(hamming(a.phash.unwrap(), b.phash.unwrap()) <= 4, "{:016x} vs {:016x}", a.phash.unwrap(), b.phash.unwrap());
}

/// libjpeg does not turn CMYK into RGB; those files take jpeg-decoder, and still get a
/// thumbnail whose colours are the picture's (a dark ink stays dark, no ink stays light).
#[test]
fn a_cmyk_jpeg_gets_a_thumbnail() {
    let (w, h) = (400u16, 300u16);
    let mut cmyk = Vec::with_capacity(usize::from(w) * usize::from(h) * 4);
    for _y in 0..h {
        for x in 0..w {
            let ink = if x < w / 2 { 0u8 } else { 230 };
            cmyk.extend_from_slice(&[ink, ink, ink, ink]);
        }
    }
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 90).encode(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk).unwrap();
    let a = analyze_file(&jpeg, None);
    assert!(a.problems.is_empty(), "{:?}", a.problems);
    assert_eq!((a.thumb_width, a.thumb_height), (320, 240));
    let thumb = image::load_from_memory(a.thumbnail.as_ref().unwrap()).unwrap().to_rgb8();
    let (left, right) = (thumb.get_pixel(20, 120)[0], thumb.get_pixel(300, 120)[0]);
    assert!(left.abs_diff(right) > 100, "left {left}, right {right}: the two halves must differ");
}

/// The decode scale: the smallest n/8 whose long edge still reaches the thumbnail's.
#[test]
fn the_decode_scale_is_the_smallest_that_still_covers_the_thumbnail() {
    assert_eq!(jpeg::scale_numerator(4000, 3000), 1); // 500 px
    assert_eq!(jpeg::scale_numerator(3000, 4000), 1);
    assert_eq!(jpeg::scale_numerator(2000, 1500), 2); // 1/8 would be 250 px
    assert_eq!(jpeg::scale_numerator(1280, 960), 2); // 320 px exactly
    assert_eq!(jpeg::scale_numerator(1000, 750), 4);
    assert_eq!(jpeg::scale_numerator(600, 400), 8); // 1/2 would be 300 px
    assert_eq!(jpeg::scale_numerator(100, 50), 8); // smaller than a thumbnail: whole
    assert_eq!(jpeg::scale_numerator(u32::MAX, 1), 1);
}
