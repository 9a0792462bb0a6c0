package com.kuaige.onsite.sample.logic

import com.kuaige.onsite.Stroke
import com.kuaige.onsite.StrokePoint
import com.kuaige.onsite.renderSignaturePng

/**
 * The customer's signature as strokes (points with time and pressure), fed by touch events.
 * The strokes, not a picture, go into the signed receipt: they carry the signing rhythm.
 */
class SignaturePad {
    private val strokes = mutableListOf<MutableList<StrokePoint>>()
    private var startedAtMs: Long? = null

    val isEmpty: Boolean get() = strokes.none { it.size >= 2 }

    fun down(x: Float, y: Float, timeMs: Long, pressure: Float = 0.5f) {
        strokes.add(mutableListOf())
        move(x, y, timeMs, pressure)
    }

    fun move(x: Float, y: Float, timeMs: Long, pressure: Float = 0.5f) {
        val start = startedAtMs ?: timeMs.also { startedAtMs = it }
        val t = (timeMs - start).coerceAtLeast(0).toUInt()
        strokes.lastOrNull()?.add(StrokePoint(x, y, t, pressure.coerceIn(0f, 1f)))
    }

    fun clear() {
        strokes.clear()
        startedAtMs = null
    }

    fun strokes(): List<Stroke> = strokes.filter { it.isNotEmpty() }.map { Stroke(it.toList()) }

    /** A PNG preview rendered by the core, exactly as the customer copy shows it. */
    fun preview(maxWidth: UInt = 600u, maxHeight: UInt = 240u): ByteArray = renderSignaturePng(strokes(), maxWidth, maxHeight)
}
