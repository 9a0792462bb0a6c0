// Evidence through the generated Swift bindings: ingest a real JPEG, reuse detection, journal.
import Foundation
import XCTest
@testable import Onsite

final class EvidenceTests: XCTestCase {
    /// A 96x64 baseline JPEG (gradient and a disc), made with Java ImageIO: Swift on Linux has
    /// no image encoder, so the bytes are embedded.
    static let sampleJpeg = Data(base64Encoded: "/9j/4AAQSkZJRgABAgAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjL/wAARCABAAGADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDDRasxrTEWrMa1J99Jj41q1GtRxrUGpazY6PFvuZMucbYkwXYHvjPTg8+1a0aNStNU6au30RyVqsacXKbsjUjWrMa15zN8QL0yA21lbxpjkSFnOfqMfyp1v8RdQSZTPZ2skX8SpuRj9CScflXurhfMuW/KvS6/4b8TyJZxhb2u/uPTY1q1Gtc/4e8U6dryhI38i6GAbeVgGJxk7f7w4PvxyBXTIteJiMPVw9R060eWS7m8a0KkeaDuh8a1ZRaZGtWY1rEykySNasxrTI1qzGtBhKR4/GtWY1pka1ajWkfQykQX15HpunT3kgysS5A/vHoB+JwK8qvLqW+vJbqY5klYseTgewz2HQV3fjmQx6JDGrOPMnG7AOCACcE9OuDg+ntXntfovCOEhDDSxFvek7fJf8E+QzyvKVZUui/MKKKK+uPDHRyPDKksTskiEMrKcFSOhB7GvefCetr4h0OK9KqkwYxzIucK49M9iCD3xnGTivBK9R+ELyNHq8RdjGrRMqZ4BO/JA9TgfkK+Y4qwkKuBdZ/FBr7m0mv1+R6OW1ZQrcnRnpka1aRaZGtWY1r80Pbkx8a1ZjWmRrVpFpnPJnj0a1aRaYi1ZjWkfRSZz/jOxe68NyOm4m3dZiqrnI5B+mAxOfavMK928lJY2jkRXRgVZWGQQeoIry3xP4Tu9GnmuoYt+ml8o6nPlgnhWBOeOmeh45ycV91wnmdOMHg6js73j536ep8xnOGk5KtFadf8zm6KKK+4PACvXvhHpskOk32oPuC3MqoismAQgPzA9wSxH1U/h5/4a8Jal4muB9mTy7RXCTXL/dTjPA6scdh6jOAc19A6dp9tp1lFZ2cKw28S7URegH9T3J6k18dxXmdOND6nB3k9/JLXXzbt8j08voS5vavZbFuNasxrTI1qzGtfnx6kpEka1ZjWmRrVmNaZzyZ4/GtWY1pka1ZjWkfRSY+NatRrTI1qyi0HPJmLP4K8O3sokl0uFWC7cRFohj6KQM89altPAfhq2nWZNKjZlzgSu8i9McqxIP4it6NasxrXYsxxijy+1lbtzP8AzOKVGle/Kr+iFt4I4YkiiRY40UKqKMBQOgA7Crka0yNasxrXJe+rIkx8a1aRaZGtWY1oMJMfGtWY1pka1ZRaDnkz/9k=")!

    private var jpeg: Data { Self.sampleJpeg }

    private var samples: String {
        let path = ProcessInfo.processInfo.environment["ONSITE_SAMPLES"] ?? "/src/cli/samples/orders.json"
        return try! String(contentsOfFile: path, encoding: .utf8)
    }

    func testIngestJpegDetectReuseAndVerifyJournal() async throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onsite-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let store = try Onsite.open(dataDir: url.path)
        _ = try store.orders().importJson(json: samples)
        let file = url.appendingPathComponent("photo.jpg")
        try jpeg.write(to: file)
        let r = try await store.evidence().ingestFile(orderId: "WO-20261123-0001", stepId: "repair_photo", path: file.path, fix: nil)
        XCTAssertEqual(r.format, "jpeg")
        XCTAssertEqual(r.width, 96)
        XCTAssertEqual(r.height, 64)
        XCTAssertNotNil(r.thumbSha256)
        XCTAssertNotNil(r.phash)
        XCTAssertEqual(try store.evidence().blob(sha256: r.sha256), jpeg, "bytes round-trip")
        let again = try await store.evidence().ingestBytes(orderId: "WO-20261123-0003", stepId: nil, bytes: jpeg, fix: nil)
        XCTAssertEqual(again.reusedOn.map { $0.orderId }, ["WO-20261123-0001"])
        await assertThrowsAsync(try await store.evidence().ingestBytes(orderId: "WO-missing", stepId: nil, bytes: jpeg, fix: nil)) { error in
            guard case ApiError.NotFound(id: "WO-missing") = error else { return XCTFail("unexpected \(error)") }
        }
        let report = try store.evidence().verifyJournal()
        XCTAssertTrue(report.ok, report.problem ?? "")
        // The session (device key), three imports, two photos each sealed at once.
        XCTAssertEqual(report.entries, 8)
        XCTAssertNil(report.unsealedFrom)
        XCTAssertEqual(store.publicKey().count, 65)
    }
}

/// A hardware key as slow as a secure element (`delay` per signature) that holds
/// countersignatures back until `release()`: an answer that waited on one would never return.
/// Swift on Linux has no P-256, so the arithmetic is the library's `SoftwareKey`; everything
/// else goes through the real `DeviceSigner` foreign trait.
final class SlowSecureElement: DeviceSigner, @unchecked Sendable {
    private let key: SoftwareKey
    private let delay: TimeInterval
    private let gate = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var held = true
    private(set) var calls = 0
    private(set) var countersigned = 0

    init(delay: TimeInterval) throws {
        key = try SoftwareKey.generate()
        self.delay = delay
    }

    func release() {
        lock.lock()
        held = false
        lock.unlock()
        gate.signal()
    }

    func publicKey() -> Data { key.publicKey() }

    func sign(message: Data) throws -> Data {
        lock.lock()
        calls += 1
        let wait = held
        lock.unlock()
        if String(decoding: message, as: UTF8.self).hasPrefix("onsite-countersign/") {
            if wait {
                _ = gate.wait(timeout: .now() + 20)
                gate.signal()
            }
            lock.lock()
            countersigned += 1
            lock.unlock()
        }
        Thread.sleep(forTimeInterval: delay)
        return try key.sign(message: message)
    }
}

final class SlowSignerTests: XCTestCase {
    private var samples: String {
        let path = ProcessInfo.processInfo.environment["ONSITE_SAMPLES"] ?? "/src/cli/samples/orders.json"
        return try! String(contentsOfFile: path, encoding: .utf8)
    }

    func testASlowHardwareKeyIsUsedRarelyAndNeverWaitedOnByAnEdit() async throws {
        let key = try SlowSecureElement(delay: 0.1)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("onsite-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let store = try Onsite.openWithPlatform(dataDir: dir.path, clock: nil, signer: key, location: nil)
        _ = try store.orders().importJson(json: samples)
        let id = "WO-20261123-0001"
        var view = try store.checklist().start(orderId: id, templateId: "onsite-repair")
        var consents = 0
        while let next = view.open.first, let step = view.steps.first(where: { $0.id == next }) {
            let answer = testAnswer(for: step, in: view, order: try store.orders().get(id: id))
            if case .consent = answer { consents += 1 }
            view = try store.checklist().answer(orderId: id, stepId: step.id, answer: answer)
        }
        // Every consent was answered while the key held its countersignatures back.
        XCTAssertEqual(consents, 3)
        XCTAssertEqual(key.countersigned, 0)
        key.release()
        let seals = try await store.evidence().sealJournal()
        XCTAssertGreaterThanOrEqual(seals, 1)
        let report = try store.evidence().verifyJournal()
        XCTAssertTrue(report.ok, report.problem ?? "")
        XCTAssertNil(report.unsealedFrom)
        XCTAssertEqual(report.countersigned, 3)
        // The hardware key signed the session and the three countersignatures, nothing else.
        XCTAssertEqual(key.calls, 1 + consents)
        XCTAssertEqual(try store.evidence().journal(orderId: id).filter { $0.kind == "countersign" }.count, 3)
    }
}
