import Foundation
import Onsite

/// The customer's signature as strokes (points with time and pressure) fed by touches; the
/// strokes, not a picture, go into the signed receipt.
public final class SignaturePad {
    private var strokes: [[StrokePoint]] = []
    private var startedAt: TimeInterval?

    public init() {}

    public var isEmpty: Bool { !strokes.contains { $0.count >= 2 } }

    public func down(x: Float, y: Float, time: TimeInterval, pressure: Float = 0.5) {
        strokes.append([])
        move(x: x, y: y, time: time, pressure: pressure)
    }

    public func move(x: Float, y: Float, time: TimeInterval, pressure: Float = 0.5) {
        let start = startedAt ?? time
        startedAt = start
        let t = UInt32(max(0, (time - start) * 1000).rounded())
        guard !strokes.isEmpty else { return }
        strokes[strokes.count - 1].append(StrokePoint(x: x, y: y, tMs: t, pressure: min(max(pressure, 0), 1)))
    }

    public func clear() {
        strokes = []
        startedAt = nil
    }

    public var value: [Stroke] { strokes.filter { !$0.isEmpty }.map { Stroke(points: $0) } }

    /// A PNG preview rendered by the core, as the customer copy shows it.
    public func preview(maxWidth: UInt32 = 600, maxHeight: UInt32 = 240) throws -> Data {
        try renderSignaturePng(strokes: value, maxWidth: maxWidth, maxHeight: maxHeight)
    }
}
