// XCTest of the generated Swift bindings against the real libonsite_ffi.so.
import Foundation
import XCTest
@testable import Onsite

final class OnsiteTests: XCTestCase {
    private var samples: String {
        let path = ProcessInfo.processInfo.environment["ONSITE_SAMPLES"] ?? "/src/cli/samples/orders.json"
        return try! String(contentsOfFile: path, encoding: .utf8)
    }

    private func tempDir() -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onsite-swift-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    private let all = OrderFilter(statuses: [], sort: .slaDeadline)

    func testCreateListTransition() async throws {
        let store = try Onsite.open(dataDir: tempDir())
        let ids = try store.orders().importJson(json: samples)
        XCTAssertEqual(ids, ["WO-20261123-0001", "WO-20261123-0002", "WO-20261123-0003"])
        let rows = try store.orders().list(filter: all)
        XCTAssertEqual(rows.count, 3)
        XCTAssertEqual(rows[0].priority, .urgent)

        let id = ids[0]
        var d = try store.orders().transition(id: id, request: .accept, fix: nil)
        XCTAssertEqual(d.status, .accepted)
        XCTAssertEqual(d.nextEvents, ["contact_customer", "reschedule"])
        let start = Date(timeIntervalSince1970: 1_795_000_000.123)
        let window = TimeWindow(start: start, end: start.addingTimeInterval(7200))
        d = try store.orders().transition(id: id, request: .contactCustomer(window: window), fix: nil)
        d = try store.orders().transition(id: id, request: .depart, fix: nil)
        let fix = GpsFix(lat: 39.90871, lon: 116.46023, accuracyM: 6.5, source: .gps, mock: true)
        d = try store.orders().transition(id: id, request: .arrive, fix: fix)
        XCTAssertEqual(d.status, .onSite)
        XCTAssertEqual(d.transitions.count, 4)
        XCTAssertEqual(d.transitions.last?.fix, fix, "the mock-location flag is kept, not dropped")
        XCTAssertEqual(d.appointment?.start.timeIntervalSince1970 ?? 0, 1_795_000_000.123, accuracy: 0.0005)

        let onSite = try store.orders().list(filter: OrderFilter(statuses: [.onSite], sort: .updated))
        XCTAssertEqual(onSite.map { $0.id }, [id])
    }

    func testIllegalTransitionIsATypedError() async throws {
        let store = try Onsite.open(dataDir: tempDir())
        _ = try store.orders().importJson(json: samples)
        XCTAssertThrowsError(try store.orders().transition(id: "WO-20261123-0001", request: .complete, fix: nil)) { error in
            guard case let ApiError.IllegalTransition(from, event) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(from, .assigned)
            XCTAssertEqual(event, "complete")
        }
        XCTAssertThrowsError(try store.orders().get(id: "WO-missing")) { error in
            XCTAssertEqual(error as? ApiError, .NotFound(id: "WO-missing"))
        }
        let bad = samples.replacingOccurrences(of: "\"priority\": \"low\"", with: "\"priority\": \"someday\"")
        XCTAssertThrowsError(try store.orders().importJson(json: bad)) { error in
            guard case let ApiError.InvalidInput(field, _) = error else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(field, "[2].priority")
        }
        XCTAssertEqual(try store.orders().get(id: "WO-20261123-0001").status, .assigned)
    }

    func testBytesAndTimesRoundTrip() async throws {
        let a = try Onsite.open(dataDir: tempDir())
        let b = try Onsite.open(dataDir: tempDir())
        XCTAssertNotEqual(a.deviceId(), b.deviceId())
        _ = try a.orders().importJson(json: samples)
        // Before the epoch, to the millisecond (uniffi loses the sign of times less than one
        // second before the epoch; real orders never get near 1970).
        let before = Date(timeIntervalSince1970: -14_182_939.750)
        let window = TimeWindow(start: before, end: before.addingTimeInterval(0.5))
        _ = try a.orders().transition(id: "WO-20261123-0003", request: .accept, fix: nil)
        _ = try a.orders().transition(id: "WO-20261123-0003", request: .contactCustomer(window: window), fix: nil)
        let bytes = try a.orders().documentBytes(id: "WO-20261123-0003")
        let merged = try b.orders().mergeDocument(bytes: bytes)
        XCTAssertEqual(merged, try a.orders().get(id: "WO-20261123-0003"))
        XCTAssertEqual(merged.appointment, window)
        _ = try b.orders().addNote(id: "WO-20261123-0003", text: "等待配件 / waiting for the part")
        let back = try a.orders().mergeDocument(bytes: try b.orders().documentBytes(id: "WO-20261123-0003"))
        XCTAssertEqual(back.notes.map { $0.text }, ["等待配件 / waiting for the part"])
        XCTAssertThrowsError(try a.orders().mergeDocument(bytes: Data([0x85, 0x6f, 0x4a, 0x83, 0x01]))) { error in
            guard case ApiError.InvalidInput(field: "document", _) = error else { return XCTFail("unexpected \(error)") }
        }
    }

    final class FlakyClock: ClockSource, @unchecked Sendable {
        private let lock = NSLock()
        private var calls = 0
        let at: Date
        init(at: Date) { self.at = at }
        var count: Int { lock.lock(); defer { lock.unlock() }; return calls }
        func now() throws -> Date {
            lock.lock(); defer { lock.unlock() }
            calls += 1
            if calls % 2 == 0 { throw ApiError.Internal(reason: "clock broke") }
            return at
        }
        func monotonicMs() throws -> UInt64 { 42 }
    }

    func testForeignClockIsUsedAndItsFailuresAreContained() async throws {
        let at = Date(timeIntervalSince1970: 1_795_000_000)
        let clock = FlakyClock(at: at)
        let store = try Onsite.openWithPlatform(dataDir: tempDir(), clock: clock, signer: nil, location: nil)
        _ = try store.orders().importJson(json: samples)
        let d = try store.orders().transition(id: "WO-20261123-0002", request: .accept, fix: nil)
        XCTAssertEqual(d.transitions.first?.monotonicMs, 42)
        for i in 0..<5 { _ = try store.orders().addNote(id: "WO-20261123-0002", text: "note \(i)") }
        XCTAssertEqual(try store.orders().get(id: "WO-20261123-0002").notes.count, 5)
        XCTAssertGreaterThan(clock.count, 3)
    }
}
