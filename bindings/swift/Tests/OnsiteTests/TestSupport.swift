// Helpers shared by the Swift tests: a valid answer for any checklist step.
import Foundation
import XCTest
@testable import Onsite

let testSignature = [Stroke(points: (0..<20).map { StrokePoint(x: Float($0) * 5, y: 40, tMs: UInt32($0 * 16), pressure: 0.6) })]

func fakeSha(_ s: String) -> String {
    // 64 lowercase hex characters derived from the text (the photo's real hash comes from ingest).
    var h: UInt64 = 1469598103934665603
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
    return String(repeating: String(format: "%016llx", h), count: 4)
}

func testAnswer(for step: ChecklistStep, in view: ChecklistView, order: OrderDetail) -> StepAnswer {
    switch step.kind {
    case .confirmation: return .confirmed
    case let .photo(min, _):
        return .photos(photos: (0..<Int(max(1, min))).map { PhotoRef(sha256: fakeSha("\(step.id)/\($0)"), label: "photo \($0)") })
    case let .measurement(_, min, max): return .measurement(value: ((min ?? 0) + (max ?? 2)) / 2)
    case .note: return .note(text: "done: \(step.label.en)")
    case let .choice(options, _): return .choice(selected: [options[0].id])
    case let .barcode(_, fromStep):
        if let from = fromStep,
           case let .parts(parts)? = view.steps.first(where: { $0.id == from })?.current?.answer,
           let serial = parts.first?.serial {
            return .barcode(scanned: serial)
        }
        return .barcode(scanned: order.equipment.serial)
    case .parts:
        // One part per order through the ledger: borrowed, fitted (the old one out), returned.
        let id = order.id
        switch step.ledger {
        case "install": return .parts(parts: [PartUse(partNumber: "FRU-5B20W77543", serial: "SN-\(id)", quantity: 1, returnedSerial: "OLD-\(id)")])
        case "return":
            let fitted = view.steps.contains { s in
                if s.ledger == "install", case let .parts(p)? = s.current?.answer { return !p.isEmpty }
                return false
            }
            return .parts(parts: [PartUse(partNumber: "FRU-5B20W77543", serial: fitted ? "OLD-\(id)" : "SN-\(id)", quantity: 1, returnedSerial: nil)])
        default: return .parts(parts: [PartUse(partNumber: "FRU-5B20W77543", serial: "SN-\(id)", quantity: 1, returnedSerial: nil)])
        }
    case .timer:
        let now = Date()
        return .observation(started: now.addingTimeInterval(-300), stopped: now, reproduced: true)
    case let .consent(_, riskSha256):
        return .consent(accepted: true, riskSha256: riskSha256, signer: "王女士", strokes: testSignature)
    }
}


/// `XCTAssertThrowsError` for async calls (its autoclosure cannot await).
func assertThrowsAsync<T>(_ expression: @autoclosure () async throws -> T, file: StaticString = #filePath, line: UInt = #line, _ check: (Error) -> Void) async {
    do {
        _ = try await expression()
        XCTFail("expected an error", file: file, line: line)
    } catch {
        check(error)
    }
}
