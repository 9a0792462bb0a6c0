//! Memory stays bounded on every photo input: a counting allocator (this test binary's own)
//! measures the heap peak of analysing each input. Fast path <= 8 MB; anything <= 64 MB.

use onsite_core::evidence::photo::{analyze, Limits};
use onsite_tests::alloc::{peak_since, reset, Counting};

#[global_allocator]
static A: Counting = Counting;

fn peak_of(path: &std::path::Path) -> (usize, Vec<String>) {
    let base = reset();
    let a = analyze(path, &Limits::default()).unwrap();
    (peak_since(base), a.problems)
}

fn jpeg(w: u32, h: u32, progressive_noise: bool) -> Vec<u8> {
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    let mut s = 12345u32;
    for (i, px) in rgb.iter_mut().enumerate() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        *px = if progressive_noise { (s & 63) as u8 + (i % 190) as u8 } else { (i % 251) as u8 };
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 88).encode(&rgb, w, h, image::ExtendedColorType::Rgb8).unwrap();
    out
}

/// A progressive JPEG (as phone editors and web tools re-save photos) with the given chroma
/// subsampling.
fn progressive(w: u32, h: u32, sampling: jpeg_encoder::SamplingFactor) -> Vec<u8> {
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 3) as usize;
            let disc = ((x as i64 - w as i64 / 3).pow(2) + (y as i64 - h as i64 / 2).pow(2)) < (h as i64 / 4).pow(2);
            rgb[i] = (x * 255 / w) as u8;
            rgb[i + 1] = if disc { 230 } else { (y * 255 / h) as u8 };
            rgb[i + 2] = ((x ^ y) & 31) as u8 + 90;
        }
    }
    let mut out = Vec::new();
    let mut e = jpeg_encoder::Encoder::new(&mut out, 85);
    e.set_progressive(true);
    e.set_sampling_factor(sampling);
    e.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb).unwrap();
    out
}

/// Sets the SOF0 dimensions of a JPEG (a decompression bomb keeps a small body).
fn with_header_size(mut j: Vec<u8>, w: u16, h: u16) -> Vec<u8> {
    let sof = j.windows(2).position(|x| x == [0xFF, 0xC0]).unwrap();
    j[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    j
}

#[test]
fn memory_is_bounded_on_every_input() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let camera = jpeg(4000, 3000, true);
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("camera-12mp.jpg", camera.clone(), 8 << 20),
        ("truncated.jpg", camera[..camera.len() / 3].to_vec(), 64 << 20),
        ("bomb-60000.jpg", with_header_size(jpeg(64, 64, false), 60000, 60000), 64 << 20),
        ("bomb-20000x3000.jpg", with_header_size(jpeg(64, 64, false), 20000, 3000), 64 << 20),
        (
            "zeros.jpg",
            {
                let mut z = vec![0xFF, 0xD8, 0xFF, 0xE0];
                z.extend(vec![0u8; 100_000]);
                z
            },
            64 << 20,
        ),
        ("heic.heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec(), 64 << 20),
        ("text.txt", b"not a photo".to_vec(), 64 << 20),
    ];
    for (name, bytes, limit) in cases {
        let p = write(name, &bytes);
        let (peak, problems) = peak_of(&p);
        eprintln!("{name}: peak {:.2} MB {problems:?}", peak as f64 / 1048576.0);
        assert!(peak <= limit, "{name}: {peak} bytes > {limit}");
    }
    // A 12 MP progressive camera photo (4:2:0) is decoded within the bound; a 12 MP 4:4:4 one
    // (68 MB of coefficients) is refused before decoding, with the reason.
    let (peak, problems) = peak_of(&write("progressive-12mp-420.jpg", &progressive(4000, 3000, jpeg_encoder::SamplingFactor::R_4_2_0)));
    eprintln!("progressive 12 MP 4:2:0: peak {:.2} MB {problems:?}", peak as f64 / 1048576.0);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(peak <= 64 << 20, "progressive 4:2:0: {peak}");
    let (peak, problems) = peak_of(&write("progressive-12mp-444.jpg", &progressive(4000, 3000, jpeg_encoder::SamplingFactor::R_4_4_4)));
    assert!(peak <= 64 << 20, "progressive 4:4:4: {peak}");
    assert!(problems.iter().any(|p| p.contains("progressive image too large") && p.contains("68 MB")), "{problems:?}");
    // A PNG bomb: 20000 x 20000 header.
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3])).write_to(&mut png, image::ImageFormat::Png).unwrap();
    let mut png = png.into_inner();
    png[16..20].copy_from_slice(&20000u32.to_be_bytes());
    png[20..24].copy_from_slice(&20000u32.to_be_bytes());
    let (peak, problems) = peak_of(&write("bomb.png", &png));
    assert!(peak <= 64 << 20, "png bomb: {peak}");
    assert!(!problems.is_empty());
}

#[test]
fn a_photo_resaved_as_progressive_jpeg_keeps_its_perceptual_hash() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = {
        let img = image::load_from_memory(&progressive(2000, 1500, jpeg_encoder::SamplingFactor::R_4_2_0)).unwrap().to_rgb8();
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out
    };
    let analyse = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        analyze(&p, &Limits::default()).unwrap()
    };
    let a = analyse("baseline.jpg", &baseline);
    let b = analyse("progressive.jpg", &progressive(2000, 1500, jpeg_encoder::SamplingFactor::R_4_2_0));
    assert!(b.problems.is_empty(), "{:?}", b.problems);
    let d = onsite_core::evidence::photo::hamming(a.phash.unwrap(), b.phash.unwrap());
    assert!(d <= 4, "progressive copy at distance {d}");
}
