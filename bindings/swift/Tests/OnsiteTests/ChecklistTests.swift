// Walks the seed-003 on-site repair checklist through the generated Swift bindings.
import Foundation
import XCTest
@testable import Onsite

final class ChecklistTests: XCTestCase {
    private var samples: String {
        let path = ProcessInfo.processInfo.environment["ONSITE_SAMPLES"] ?? "/src/cli/samples/orders.json"
        return try! String(contentsOfFile: path, encoding: .utf8)
    }

    private func store() throws -> Onsite {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onsite-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let s = try Onsite.open(dataDir: url.path)
        _ = try s.orders().importJson(json: samples)
        return s
    }

    func testWalkSeed003ToCompletionAndHitABlocker() async throws {
        let s = try store()
        let id = "WO-20261123-0001"
        var view = try s.checklist().start(orderId: id, templateId: "onsite-repair")
        XCTAssertEqual(view.open, ["dress_badge", "borrow_parts"])
        XCTAssertThrowsError(try s.checklist().answer(orderId: id, stepId: "customer_signs", answer: .confirmed)) { error in
            guard case ApiError.StepRefused(step: "customer_signs", _) = error else { return XCTFail("unexpected \(error)") }
        }
        XCTAssertThrowsError(try s.checklist().answer(orderId: id, stepId: "dress_badge", answer: .note(text: "x"))) { error in
            guard case ApiError.InvalidInput(field: "dress_badge", _) = error else { return XCTFail("unexpected \(error)") }
        }
        let blockers = try s.checklist().blockers(orderId: id)
        XCTAssertEqual(blockers.first?.step, "dress_badge")
        XCTAssertEqual(blockers.first?.reason.zh, "尚未确认")

        var answered = 0
        while let next = view.open.first, let step = view.steps.first(where: { $0.id == next }) {
            view = try s.checklist().answer(orderId: id, stepId: step.id, answer: testAnswer(for: step, in: view, order: try s.orders().get(id: id)))
            answered += 1
        }
        XCTAssertGreaterThan(answered, 15)
        XCTAssertEqual(view.blockers, [])
        guard case let .consent(accepted, _, signer, strokes)? = view.steps.first(where: { $0.id == "customer_signs" })?.current?.answer else {
            return XCTFail("no consent recorded")
        }
        XCTAssertTrue(accepted)
        XCTAssertEqual(signer, "王女士")
        XCTAssertEqual(strokes, testSignature, "signature strokes round-trip")
        XCTAssertEqual(try s.checklist().history(orderId: id, stepId: "dress_badge").count, 1)
    }

    func testCompletionIsRefusedWhileBlockersRemain() async throws {
        let s = try store()
        let id = "WO-20261123-0002"
        let w = TimeWindow(start: Date(), end: Date().addingTimeInterval(3600))
        for r: TransitionRequest in [.accept, .contactCustomer(window: w), .depart, .arrive, .startWork, .requestSignature] {
            _ = try s.orders().transition(id: id, request: r, fix: nil)
        }
        XCTAssertThrowsError(try s.orders().transition(id: id, request: .complete, fix: nil)) { error in
            guard case ApiError.Blocked(_, firstStep: "checklist") = error else { return XCTFail("unexpected \(error)") }
        }
        _ = try s.checklist().start(orderId: id, templateId: "os-reinstall")
        XCTAssertThrowsError(try s.orders().transition(id: id, request: .complete, fix: nil)) { error in
            guard case ApiError.Blocked(_, firstStep: "consent_reinstall") = error else { return XCTFail("unexpected \(error)") }
        }
    }
}
