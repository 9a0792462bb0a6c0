// HEIC (the iPhone camera's default), AVIF and the rest through ImageIO.
#if canImport(ImageIO) && canImport(CoreGraphics)
import CoreGraphics
import Foundation
import ImageIO
import Onsite

/// The core hashes the original bytes; ImageIO decodes a thumbnail-sized image with the EXIF
/// orientation applied (`kCGImageSourceCreateThumbnailWithTransform`), returned as RGB, from
/// which the core makes the thumbnail and the perceptual hash. `nil` when ImageIO cannot.
final class ImageIODecoder: ImageDecoder, @unchecked Sendable {
    func decode(path: String, format: String, maxEdge: UInt32) throws -> DecodedImage? {
        guard let source = CGImageSourceCreateWithURL(URL(fileURLWithPath: path) as CFURL, nil),
              let props = CGImageSourceCopyPropertiesAtIndex(source, 0, nil) as? [CFString: Any],
              let width = props[kCGImagePropertyPixelWidth] as? Int,
              let height = props[kCGImagePropertyPixelHeight] as? Int else { return nil }
        let options: [CFString: Any] = [
            kCGImageSourceCreateThumbnailFromImageAlways: true,
            kCGImageSourceCreateThumbnailWithTransform: true,
            kCGImageSourceThumbnailMaxPixelSize: Int(maxEdge),
            kCGImageSourceShouldCacheImmediately: true,
        ]
        guard let image = CGImageSourceCreateThumbnailAtIndex(source, 0, options as CFDictionary) else { return nil }
        let (w, h) = (image.width, image.height)
        var rgba = [UInt8](repeating: 0, count: w * h * 4)
        let drawn: Bool = rgba.withUnsafeMutableBytes { buffer in
            guard let ctx = CGContext(data: buffer.baseAddress, width: w, height: h, bitsPerComponent: 8, bytesPerRow: w * 4,
                                      space: CGColorSpaceCreateDeviceRGB(), bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else { return false }
            ctx.draw(image, in: CGRect(x: 0, y: 0, width: w, height: h))
            return true
        }
        guard drawn else { return nil }
        var rgb = Data(count: w * h * 3)
        rgb.withUnsafeMutableBytes { out in
            for i in 0..<(w * h) {
                out[3 * i] = rgba[4 * i]
                out[3 * i + 1] = rgba[4 * i + 1]
                out[3 * i + 2] = rgba[4 * i + 2]
            }
        }
        return DecodedImage(width: UInt32(width), height: UInt32(height), smallWidth: UInt32(w), smallHeight: UInt32(h), rgb: rgb)
    }
}
#endif
