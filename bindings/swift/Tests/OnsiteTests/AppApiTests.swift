// The app-facing API from Swift: change subscriptions, the location provider, the log sink,
// cancellation with a token, and callbacks that fail without taking the core down.
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import Onsite

final class ChangeRecorder: OrderChangeListener, @unchecked Sendable {
    private let lock = NSLock()
    private var _seen: [([String], ChangeOrigin)] = []
    var seen: [([String], ChangeOrigin)] { lock.lock(); defer { lock.unlock() }; return _seen }
    func onOrdersChanged(orderIds: [String], origin: ChangeOrigin) throws {
        lock.lock(); defer { lock.unlock() }
        _seen.append((orderIds, origin))
    }
}

final class ThrowingListener: OrderChangeListener, @unchecked Sendable {
    var calls = 0
    func onOrdersChanged(orderIds: [String], origin: ChangeOrigin) throws {
        calls += 1
        throw ApiError.Internal(reason: "a bug in the app's list screen")
    }
}

final class FixedLocation: LocationProvider, @unchecked Sendable {
    let fix: GpsFix?
    let fail: Bool
    var calls = 0
    init(fix: GpsFix?, fail: Bool) { self.fix = fix; self.fail = fail }
    func currentFix() throws -> GpsFix? {
        calls += 1
        if fail { throw ApiError.NotPermitted(reason: "location permission revoked") }
        return fix
    }
}

final class LineSink: LogSink, @unchecked Sendable {
    private let lock = NSLock()
    private var _lines: [LogRecord] = []
    var lines: [LogRecord] { lock.lock(); defer { lock.unlock() }; return _lines }
    func log(record: LogRecord) throws {
        lock.lock(); defer { lock.unlock() }
        _lines.append(record)
    }
}

final class AppApiTests: XCTestCase {
    private var samples: String {
        let path = ProcessInfo.processInfo.environment["ONSITE_SAMPLES"] ?? "/src/cli/samples/orders.json"
        return try! String(contentsOfFile: path, encoding: .utf8)
    }

    private func tempDir() -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onsite-swift-app-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    private let first = "WO-20261123-0001"

    func testChangeListenerIsToldAndAThrowingOneIsContained() throws {
        let store = try Onsite.open(dataDir: tempDir())
        let recorder = ChangeRecorder()
        let broken = ThrowingListener()
        let sub = store.subscribe(listener: recorder)
        let brokenSub = store.subscribe(listener: broken)
        let ids = try store.orders().importJson(json: samples)
        XCTAssertEqual(recorder.seen.count, 1)
        XCTAssertEqual(recorder.seen[0].0, ids)
        XCTAssertEqual(recorder.seen[0].1, .local)
        let d = try store.orders().transition(id: first, request: .accept, fix: nil)
        XCTAssertEqual(d.status, .accepted, "the edit went through although a listener threw")
        XCTAssertEqual(broken.calls, 2)
        XCTAssertEqual(recorder.seen.last?.0, [first])
        sub.cancel()
        XCTAssertFalse(sub.isActive())
        _ = try store.orders().addNote(id: first, text: "nobody hears this one")
        XCTAssertEqual(recorder.seen.count, 2)
        XCTAssertTrue(brokenSub.isActive())
    }

    func testLocationProviderFillsMissingFixesAndFailuresAreContained() throws {
        let here = GpsFix(lat: 39.90871, lon: 116.46023, accuracyM: 8, source: .fused, mock: false)
        let ok = FixedLocation(fix: here, fail: false)
        let store = try Onsite.openWithPlatform(dataDir: tempDir(), clock: nil, signer: nil, location: ok)
        _ = try store.orders().importJson(json: samples)
        let d = try store.orders().transition(id: first, request: .accept, fix: nil)
        XCTAssertEqual(d.transitions.last?.fix, here)
        let failing = FixedLocation(fix: here, fail: true)
        let other = try Onsite.openWithPlatform(dataDir: tempDir(), clock: nil, signer: nil, location: failing)
        _ = try other.orders().importJson(json: samples)
        let e = try other.orders().transition(id: first, request: .accept, fix: nil)
        XCTAssertEqual(e.status, .accepted)
        XCTAssertNil(e.transitions.last?.fix)
        XCTAssertEqual(failing.calls, 1)
    }

    func testLogSinkReceivesCoreLines() throws {
        let sink = LineSink()
        try setLogSink(sink: sink, level: .info)
        defer { try? setLogSink(sink: nil, level: .error) }
        let store = try Onsite.open(dataDir: tempDir())
        _ = try store.orders().importJson(json: samples)
        _ = try store.orders().transition(id: first, request: .accept, fix: nil)
        let line = sink.lines.first { $0.message.hasPrefix("transition") }
        XCTAssertNotNil(line, "\(sink.lines)")
        XCTAssertEqual(line?.level, .info)
        XCTAssertTrue(line?.message.contains("order=\(first)") ?? false)
        XCTAssertFalse(sink.lines.contains { $0.level == .debug || $0.level == .trace })
    }

    /// A listening socket that never answers.
    private func blackHole() -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = listen(fd, 16)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, UInt16(bigEndian: addr.sin_port))
    }

    func testACancelTokenStopsAnAsyncCallAtOnce() async throws {
        let (fd, port) = blackHole()
        defer { close(fd) }
        let store = try Onsite.open(dataDir: tempDir())
        let token = CancelToken()
        let started = Date()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { token.cancel() }
        await assertThrowsAsync(try await store.sync().enrol(serverUrl: "http://127.0.0.1:\(port)", code: "AAAA-BBBB-CCCC", cancelToken: token)) { error in
            guard case ApiError.Cancelled = error else { return XCTFail("\(error)") }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        XCTAssertFalse(try store.sync().state().enrolled)
        XCTAssertEqual(try store.orders().importJson(json: samples).count, 3)
    }

    func testSubAreasAnswerClosedOnceTheStoreIsGone() throws {
        var store: Onsite? = try Onsite.open(dataDir: tempDir())
        let orders = store!.orders()
        _ = try orders.importJson(json: samples)
        store = nil
        XCTAssertThrowsError(try orders.list(filter: OrderFilter(statuses: [], sort: .slaDeadline))) { error in
            guard case ApiError.Closed = error else { return XCTFail("\(error)") }
        }
    }
}

final class FieldTests: XCTestCase {
    private var samples: String {
        let path = ProcessInfo.processInfo.environment["ONSITE_SAMPLES"] ?? "/src/cli/samples/orders.json"
        return try! String(contentsOfFile: path, encoding: .utf8)
    }

    private func tempDir() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onsite-swift-field-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func testBorrowRuleHelpAndServiceRecord() throws {
        let dir = tempDir()
        let store = try Onsite.open(dataDir: dir.path)
        let ids = try store.orders().importJson(json: samples)
        let parts = store.parts()
        _ = try parts.record(request: PartMovementRequest(kind: .borrow, partNumber: "FRU-5B20W77543", serial: "SN-1", quantity: 1, orderId: ids[0], removedSerial: nil, note: ""))
        XCTAssertThrowsError(try parts.record(request: PartMovementRequest(kind: .borrow, partNumber: "FRU-X", serial: "SN-2", quantity: 1, orderId: ids[1], removedSerial: nil, note: ""))) { error in
            guard case let ApiError.PartsOutstanding(count, first) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(count, 1)
            XCTAssertTrue(first.contains("SN-1"))
        }
        XCTAssertFalse(try parts.closeout(orderId: ids[0]).clear)

        let r = try store.help().ask(orderId: ids[0], question: HelpQuestion(question: "Which connector?", stepId: nil, photos: [], includeFault: true, includeNotes: false))
        XCTAssertEqual(try store.help().threads(orderId: ids[0]).first?.request.id, r.id)
        XCTAssertEqual(try store.orders().screen(id: ids[0]).help.count, 1)

        let path = dir.appendingPathComponent("record.json").path
        XCTAssertEqual(try store.profile().export(path: path), 0)
        XCTAssertTrue(verifyServiceRecord(path: path, deviceKey: store.publicKey(), logKey: nil).ok)
        XCTAssertFalse(verifyServiceRecord(path: path, deviceKey: Data(repeating: 4, count: 65), logKey: nil).ok)
    }
}
