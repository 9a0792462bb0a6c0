package com.kuaige.onsite.sample.platform

import android.graphics.Bitmap
import android.graphics.ImageDecoder as AndroidImageDecoder
import com.kuaige.onsite.DecodedImage
import com.kuaige.onsite.ImageDecoder
import java.io.File

/**
 * HEIC, AVIF and whatever else the core does not decode, through Android's own codecs
 * (`android.graphics.ImageDecoder`, API 28+; AVIF from API 31). The core hashes the original
 * bytes; this returns a small RGB image (orientation applied by the decoder) from which the
 * core makes the thumbnail and the perceptual hash. `null` when the platform cannot decode it.
 */
class PlatformImageDecoder : ImageDecoder {
    override fun decode(path: String, format: String, maxEdge: UInt): DecodedImage? {
        var width = 0
        var height = 0
        val bitmap = try {
            AndroidImageDecoder.decodeBitmap(AndroidImageDecoder.createSource(File(path))) { decoder, info, _ ->
                width = info.size.width
                height = info.size.height
                val scale = minOf(1.0, maxEdge.toDouble() / maxOf(width, height))
                decoder.setTargetSize(maxOf(1, (width * scale).toInt()), maxOf(1, (height * scale).toInt()))
                decoder.allocator = AndroidImageDecoder.ALLOCATOR_SOFTWARE
            }
        } catch (e: java.io.IOException) {
            return null
        }
        val argb = if (bitmap.config == Bitmap.Config.ARGB_8888) bitmap else bitmap.copy(Bitmap.Config.ARGB_8888, false)
        val (w, h) = argb.width to argb.height
        val pixels = IntArray(w * h)
        argb.getPixels(pixels, 0, w, 0, 0, w, h)
        val rgb = ByteArray(w * h * 3)
        for (i in pixels.indices) {
            val p = pixels[i]
            rgb[3 * i] = (p shr 16).toByte()
            rgb[3 * i + 1] = (p shr 8).toByte()
            rgb[3 * i + 2] = p.toByte()
        }
        return DecodedImage(width.toUInt(), height.toUInt(), w.toUInt(), h.toUInt(), rgb)
    }
}
