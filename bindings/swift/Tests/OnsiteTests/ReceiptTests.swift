// Signed receipts and arbitration bundles through the generated Swift bindings.
import Foundation
import XCTest
@testable import Onsite

final class ReceiptTests: XCTestCase {
    private var samples: String {
        let path = ProcessInfo.processInfo.environment["ONSITE_SAMPLES"] ?? "/src/cli/samples/orders.json"
        return try! String(contentsOfFile: path, encoding: .utf8)
    }

    private func request(rating: UInt8? = 5) -> ReceiptRequest {
        ReceiptRequest(
            diagnosis: "DC-in jack loose", workDone: "resoldered, verified boot",
            charges: [ChargeLine(description: "上门服务费", amountCents: 8000, basis: .paid)],
            currency: "CNY", rating: rating, ratingComment: "好", signerName: "王女士",
            decision: .signed(strokes: testSignature), correctionReason: nil)
    }

    func testSignReceiptExportAndVerifyBundle() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("onsite-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let s = try Onsite.open(dataDir: dir.path)
        _ = try s.orders().importJson(json: samples)
        let id = "WO-20261123-0001"
        let w = TimeWindow(start: Date().addingTimeInterval(60), end: Date().addingTimeInterval(3600))
        for t in [TransitionRequest.accept, .contactCustomer(window: w), .depart, .arrive, .startWork] {
            _ = try s.orders().transition(id: id, request: t, fix: nil)
        }
        var view = try s.checklist().start(orderId: id, templateId: "onsite-repair")
        while let next = view.open.first, let step = view.steps.first(where: { $0.id == next }) {
            var answer = testAnswer(for: step, in: view, order: try s.orders().get(id: id))
            if step.id == "repair_photo" {
                let r = try await s.evidence().ingestBytes(orderId: id, stepId: step.id, bytes: EvidenceTests.sampleJpeg, fix: nil)
                answer = .photos(photos: [PhotoRef(sha256: r.sha256, label: "repair")])
            }
            view = try s.checklist().answer(orderId: id, stepId: step.id, answer: answer)
        }
        // Too early: the order is not awaiting the customer's signature yet.
        XCTAssertThrowsError(try s.receipts().sign(orderId: id, request: request())) { error in
            guard case ApiError.NotPermitted = error else { return XCTFail("unexpected \(error)") }
        }
        _ = try s.orders().transition(id: id, request: .requestSignature, fix: nil)
        XCTAssertThrowsError(try s.receipts().sign(orderId: id, request: request(rating: 9))) { error in
            guard case ApiError.InvalidInput(field: "rating.score", _) = error else { return XCTFail("unexpected \(error)") }
        }
        let r = try s.receipts().sign(orderId: id, request: request())
        XCTAssertEqual(r.revision, 1)
        XCTAssertEqual(r.decision, "signed")
        XCTAssertEqual(r.signature.count, 64)
        XCTAssertTrue(r.canonicalJson.contains("\"kind\":\"onsite.receipt\""))
        _ = try s.orders().transition(id: id, request: .complete, fix: nil)
        XCTAssertTrue(try s.receipts().customerCopyHtml(orderId: id, revision: nil).contains("维修服务回执单"))
        let png = try renderSignaturePng(strokes: testSignature, maxWidth: 300, maxHeight: 120)
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        XCTAssertTrue(try renderSignatureSvg(strokes: testSignature).hasPrefix("<svg"))

        let path = dir.appendingPathComponent("bundle.zip").path
        let e = try await s.receipts().exportBundle(orderId: id, path: path, thumbnailsOnly: false)
        XCTAssertEqual(e.receipts, 1)
        XCTAssertEqual(e.photos, 1)
        let report = verifyBundle(path: path, deviceKey: s.publicKey())
        XCTAssertTrue(report.ok, report.text)
        XCTAssertEqual(report.orderId, id)
        XCTAssertEqual(report.signerName, "王女士")

        // One flipped byte in the middle of the file: invalid, and the report says why.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x01
        let bad = dir.appendingPathComponent("tampered.zip").path
        try bytes.write(to: URL(fileURLWithPath: bad))
        let badReport = verifyBundle(path: bad, deviceKey: nil)
        XCTAssertFalse(badReport.ok)
        XCTAssertTrue(badReport.checks.contains { !$0.passed }, badReport.text)
        XCTAssertTrue(badReport.text.contains("INVALID"))
    }
}
