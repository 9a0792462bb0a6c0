// One engineer's field day through the sample's logic layer, against the real core and a
// real onsite-server on loopback (scripts/test starts it, creates three orders for
// eng-ios-sample and an enrolment code): receive, walk seed 003 with photos, the customer
// signs, sync, export and verify the bundle.
import Foundation
import XCTest
import Onsite
@testable import OnsiteAppLogic

final class FieldDayTests: XCTestCase {
    /// A 96x64 baseline JPEG (Swift on Linux has no encoder); each capture gets its own COM
    /// segment, so every photo is a distinct file with the same picture.
    static let base = Data(base64Encoded: "/9j/4AAQSkZJRgABAgAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjL/wAARCABAAGADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDDRasxrTEWrMa1J99Jj41q1GtRxrUGpazY6PFvuZMucbYkwXYHvjPTg8+1a0aNStNU6au30RyVqsacXKbsjUjWrMa15zN8QL0yA21lbxpjkSFnOfqMfyp1v8RdQSZTPZ2skX8SpuRj9CScflXurhfMuW/KvS6/4b8TyJZxhb2u/uPTY1q1Gtc/4e8U6dryhI38i6GAbeVgGJxk7f7w4PvxyBXTIteJiMPVw9R060eWS7m8a0KkeaDuh8a1ZRaZGtWY1rEykySNasxrTI1qzGtBhKR4/GtWY1pka1ajWkfQykQX15HpunT3kgysS5A/vHoB+JwK8qvLqW+vJbqY5klYseTgewz2HQV3fjmQx6JDGrOPMnG7AOCACcE9OuDg+ntXntfovCOEhDDSxFvek7fJf8E+QzyvKVZUui/MKKKK+uPDHRyPDKksTskiEMrKcFSOhB7GvefCetr4h0OK9KqkwYxzIucK49M9iCD3xnGTivBK9R+ELyNHq8RdjGrRMqZ4BO/JA9TgfkK+Y4qwkKuBdZ/FBr7m0mv1+R6OW1ZQrcnRnpka1aRaZGtWY1r80Pbkx8a1ZjWmRrVpFpnPJnj0a1aRaYi1ZjWkfRSZz/jOxe68NyOm4m3dZiqrnI5B+mAxOfavMK928lJY2jkRXRgVZWGQQeoIry3xP4Tu9GnmuoYt+ml8o6nPlgnhWBOeOmeh45ycV91wnmdOMHg6js73j536ep8xnOGk5KtFadf8zm6KKK+4PACvXvhHpskOk32oPuC3MqoismAQgPzA9wSxH1U/h5/4a8Jal4muB9mTy7RXCTXL/dTjPA6scdh6jOAc19A6dp9tp1lFZ2cKw28S7URegH9T3J6k18dxXmdOND6nB3k9/JLXXzbt8j08voS5vavZbFuNasxrTI1qzGtfnx6kpEka1ZjWmRrVmNaZzyZ4/GtWY1pka1ZjWkfRSY+NatRrTI1qyi0HPJmLP4K8O3sokl0uFWC7cRFohj6KQM89altPAfhq2nWZNKjZlzgSu8i9McqxIP4it6NasxrXYsxxijy+1lbtzP8AzOKVGle/Kr+iFt4I4YkiiRY40UKqKMBQOgA7Crka0yNasxrXJe+rIkx8a1aRaZGtWY1oMJMfGtWY1pka1ZRaDnkz/9k=")!

    private func capture(_ n: Int) -> Data {
        let comment = Array("capture \(n)".utf8)
        var d = Data(Self.base.prefix(2))
        d.append(contentsOf: [0xFF, 0xFE, 0x00, UInt8(comment.count + 2)])
        d.append(contentsOf: comment)
        d.append(Self.base.dropFirst(2))
        return d
    }

    private func tempDir(_ name: String) -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    private func customerSigns(_ pad: SignaturePad) {
        var t: TimeInterval = 10
        pad.down(x: 20, y: 80, time: t, pressure: 0.4)
        for i in 1...30 { pad.move(x: 20 + Float(i) * 8, y: 80 + Float(i % 7) * 4, time: t + Double(i) * 0.016, pressure: 0.5) }
        t += 0.8
        pad.down(x: 60, y: 40, time: t, pressure: 0.6)
        for i in 1...12 { pad.move(x: 60 + Float(i) * 3, y: 40 + Float(i) * 6, time: t + Double(i) * 0.016, pressure: 0.6) }
    }

    /// What the engineer enters on a non-photo step.
    private func input(_ step: ChecklistStep, view: ChecklistView, order: OrderDetail, pad: SignaturePad) -> StepAnswer {
        switch step.kind {
        case .confirmation: return .confirmed
        case let .measurement(_, min, max): return .measurement(value: ((min ?? 0) + (max ?? 2)) / 2)
        case .note: return .note(text: "done: \(step.label.en)")
        case let .choice(options, _): return .choice(selected: [options[0].id])
        case let .barcode(_, fromStep):
            if let from = fromStep, case let .parts(parts)? = view.steps.first(where: { $0.id == from })?.current?.answer, let serial = parts.first?.serial {
                return .barcode(scanned: serial)
            }
            return .barcode(scanned: order.equipment.serial)
        case .parts:
            // The parts borrowed at the clerk's desk, fitted (the old one out), and returned.
            let id = order.id
            switch step.ledger {
            case "install": return .parts(parts: [PartUse(partNumber: "FRU-5B20W77543", serial: "SN-\(id)", quantity: 1, returnedSerial: "OLD-\(id)")])
            case "return": return .parts(parts: [PartUse(partNumber: "FRU-5B20W77543", serial: "OLD-\(id)", quantity: 1, returnedSerial: nil)])
            default: return .parts(parts: [PartUse(partNumber: "FRU-5B20W77543", serial: "SN-\(id)", quantity: 1, returnedSerial: nil)])
            }
        case .timer: return .observation(started: Date().addingTimeInterval(-240), stopped: Date(), reproduced: true)
        case let .consent(_, risk): return .consent(accepted: true, riskSha256: risk, signer: "王女士", strokes: pad.value)
        case .photo: fatalError("photo steps are answered by captures")
        }
    }

    func testReceiveWalkSignSyncExportVerify() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let server = env["ONSITE_TEST_SERVER"], !server.isEmpty, let code = env["ONSITE_TEST_IOS_CODE"], !code.isEmpty else {
            return XCTFail("scripts/test provides ONSITE_TEST_SERVER and ONSITE_TEST_IOS_CODE")
        }
        let session = try FieldSession(dataDir: tempDir("onsite-ios-sample"))
        var listChanges = 0
        let token = session.orders.state.observe { _ in listChanges += 1 }
        XCTAssertTrue(session.orders.state.value.rows.isEmpty)

        let enrolment = await session.sync.enrol(serverUrl: server, code: code)
        XCTAssertEqual(enrolment?.engineerId, "eng-ios-sample", "\(String(describing: session.sync.state.value.error))")

        // 1. Receive: the list fills through the change notification, sorted by SLA.
        let pulled = await session.sync.syncNow()
        XCTAssertNotNil(pulled, "\(String(describing: session.sync.state.value.error))")
        let rows = session.orders.state.value.rows
        XCTAssertEqual(rows.count, 3)
        XCTAssertGreaterThan(listChanges, 0)
        let deadlines = rows.map { $0.slaDeadline ?? .distantFuture }
        XCTAssertEqual(deadlines, deadlines.sorted())
        let id = rows[0].id

        // 2. Travel and arrive.
        let detail = session.detail(id)
        detail.refresh()
        let w = TimeWindow(start: Date().addingTimeInterval(60), end: Date().addingTimeInterval(3600))
        for r: TransitionRequest in [.accept, .contactCustomer(window: w), .depart, .arrive, .startWork] {
            XCTAssertTrue(detail.transition(r), "\(String(describing: detail.state.value.error))")
        }
        XCTAssertEqual(detail.state.value.screen?.detail.status, .inProgress)
        XCTAssertFalse(detail.transition(.complete))
        XCTAssertNotNil(detail.state.value.error)

        // 3. Walk seed 003.
        let pad = SignaturePad()
        customerSigns(pad)
        XCTAssertTrue(detail.startChecklist("onsite-repair"))
        var n = 0
        var guardCount = 0
        while let view = detail.state.value.screen?.checklist, let stepId = view.open.first {
            guardCount += 1
            XCTAssertLessThan(guardCount, 200, "stuck at \(stepId)")
            if guardCount >= 200 { return }
            let step = view.steps.first { $0.id == stepId }!
            if case .photo = step.kind {
                n += 1
                let r = await detail.capturePhoto(stepId: stepId, jpeg: capture(n))
                XCTAssertNotNil(r, "\(String(describing: detail.state.value.error))")
            } else {
                XCTAssertTrue(detail.answer(stepId, input(step, view: view, order: detail.state.value.screen!.detail, pad: pad)), "\(String(describing: detail.state.value.error))")
            }
        }
        let screen = detail.state.value.screen!
        XCTAssertGreaterThanOrEqual(screen.photos.count, 4)
        XCTAssertEqual(screen.blockers.map { $0.step }, ["receipt"])

        // 4. The customer signs.
        XCTAssertTrue(detail.transition(.requestSignature))
        XCTAssertFalse(pad.isEmpty)
        XCTAssertEqual(try pad.preview().first, 0x89)
        let receipt = detail.sign(ReceiptRequest(
            diagnosis: "DC-in jack loose", workDone: "replaced DC-in board, verified charging",
            charges: [ChargeLine(description: "上门服务费", amountCents: 8000, basis: .paid)], currency: "CNY",
            rating: 5, ratingComment: "准时", signerName: "王女士",
            decision: .signed(strokes: pad.value), correctionReason: nil))
        XCTAssertNotNil(receipt, "\(String(describing: detail.state.value.error))")
        XCTAssertTrue(detail.transition(.complete))
        XCTAssertEqual(detail.state.value.screen?.detail.status, .completed)

        // 5. Sync: nothing stays pending.
        let pushed = await session.sync.syncNow()
        XCTAssertNotNil(pushed, "\(String(describing: session.sync.state.value.error))")
        XCTAssertGreaterThanOrEqual(pushed?.photosUploaded ?? 0, 4)
        let st = session.sync.state.value.state!
        XCTAssertEqual(st.pendingJournal, 0)
        XCTAssertEqual(st.pendingOrders, 0)
        XCTAssertEqual(st.pendingPhotos, 0)
        XCTAssertNil(st.lastError)

        // 6. Export and verify the bundle.
        let path = (tempDir("onsite-ios-bundle") as NSString).appendingPathComponent("\(id).zip")
        let result = await detail.exportBundle(to: path)
        XCTAssertNotNil(result, "\(String(describing: detail.state.value.error))")
        if let (export, report) = result {
            XCTAssertGreaterThanOrEqual(export.photos, 4)
            XCTAssertTrue(report.ok, report.text)
            XCTAssertEqual(report.orderId, id)
            XCTAssertTrue(report.checks.contains { $0.check == "log.inclusion" && $0.passed })
        }
        _ = token
    }
}
