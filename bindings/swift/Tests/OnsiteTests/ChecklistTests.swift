// Walks the seed-003 on-site repair checklist through the generated Swift bindings.
import Foundation
import XCTest
@testable import Onsite

final class ChecklistTests: XCTestCase {
    private var samples: String {
        let path = ProcessInfo.processInfo.environment["ONSITE_SAMPLES"] ?? "/src/cli/samples/orders.json"
        return try! String(contentsOfFile: path, encoding: .utf8)
    }

    private func store() throws -> OnsiteStore {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onsite-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let s = try OnsiteStore.open(dataDir: url.path)
        _ = try s.importOrders(json: samples)
        return s
    }

    private let signature = [Stroke(points: (0..<20).map { StrokePoint(x: Float($0) * 5, y: 40, tMs: UInt32($0 * 16), pressure: 0.6) })]

    private func fakeSha(_ s: String) -> String {
        // 64 lowercase hex characters derived from the text (the photo's real hash comes from ingest).
        var h: UInt64 = 1469598103934665603
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 1099511628211 }
        return String(repeating: String(format: "%016llx", h), count: 4)
    }

    private func answer(for step: ChecklistStep, in view: ChecklistView, order: OrderDetail) -> StepAnswer {
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
        case .parts: return .parts(parts: [PartUse(partNumber: "FRU-5B20W77543", serial: "8SSB20W77543KT", quantity: 1, returnedSerial: nil)])
        case .timer:
            let now = Date()
            return .observation(started: now.addingTimeInterval(-300), stopped: now, reproduced: true)
        case let .consent(_, riskSha256):
            return .consent(accepted: true, riskSha256: riskSha256, signer: "王女士", strokes: signature)
        }
    }

    func testWalkSeed003ToCompletionAndHitABlocker() throws {
        let s = try store()
        let id = "WO-20261123-0001"
        var view = try s.startChecklist(orderId: id, templateId: "onsite-repair")
        XCTAssertEqual(view.open, ["dress_badge", "borrow_parts"])
        XCTAssertThrowsError(try s.answerStep(orderId: id, stepId: "customer_signs", answer: .confirmed)) { error in
            guard case ApiError.StepRefused(step: "customer_signs", _) = error else { return XCTFail("unexpected \(error)") }
        }
        XCTAssertThrowsError(try s.answerStep(orderId: id, stepId: "dress_badge", answer: .note(text: "x"))) { error in
            guard case ApiError.InvalidInput(field: "dress_badge", _) = error else { return XCTFail("unexpected \(error)") }
        }
        let blockers = try s.blockers(orderId: id)
        XCTAssertEqual(blockers.first?.step, "dress_badge")
        XCTAssertEqual(blockers.first?.reason.zh, "尚未确认")

        var answered = 0
        while let next = view.open.first, let step = view.steps.first(where: { $0.id == next }) {
            view = try s.answerStep(orderId: id, stepId: step.id, answer: answer(for: step, in: view, order: try s.getOrder(id: id)))
            answered += 1
        }
        XCTAssertGreaterThan(answered, 15)
        XCTAssertEqual(view.blockers, [])
        guard case let .consent(accepted, _, signer, strokes)? = view.steps.first(where: { $0.id == "customer_signs" })?.current?.answer else {
            return XCTFail("no consent recorded")
        }
        XCTAssertTrue(accepted)
        XCTAssertEqual(signer, "王女士")
        XCTAssertEqual(strokes, signature, "signature strokes round-trip")
        XCTAssertEqual(try s.stepHistory(orderId: id, stepId: "dress_badge").count, 1)
    }

    func testCompletionIsRefusedWhileBlockersRemain() throws {
        let s = try store()
        let id = "WO-20261123-0002"
        let w = TimeWindow(start: Date(), end: Date().addingTimeInterval(3600))
        for r: TransitionRequest in [.accept, .contactCustomer(window: w), .depart, .arrive, .startWork, .requestSignature] {
            _ = try s.transition(id: id, request: r, fix: nil)
        }
        XCTAssertThrowsError(try s.transition(id: id, request: .complete, fix: nil)) { error in
            guard case ApiError.Blocked(_, firstStep: "checklist") = error else { return XCTFail("unexpected \(error)") }
        }
        _ = try s.startChecklist(orderId: id, templateId: "os-reinstall")
        XCTAssertThrowsError(try s.transition(id: id, request: .complete, fix: nil)) { error in
            guard case ApiError.Blocked(_, firstStep: "consent_reinstall") = error else { return XCTFail("unexpected \(error)") }
        }
    }
}
