// Sync through the boundary against the real onsite-server that scripts/test started on
// loopback; the script created three orders for `eng-swift` and an enrolment code.
import Foundation
import XCTest
@testable import Onsite

final class ProgressRecorder: SyncProgressListener, @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [SyncPhase] = []
    var phases: [SyncPhase] { lock.lock(); defer { lock.unlock() }; return seen }
    func onProgress(phase: SyncPhase, done: UInt64, total: UInt64) {
        lock.lock()
        seen.append(phase)
        lock.unlock()
    }
}

final class SyncTests: XCTestCase {
    private func tempDir() -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onsite-swift-sync-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    func testEnrolReceiveWorkOfflineAndSync() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let server = env["ONSITE_TEST_SERVER"], !server.isEmpty, let code = env["ONSITE_TEST_SWIFT_CODE"], !code.isEmpty else {
            XCTFail("scripts/test provides ONSITE_TEST_SERVER and ONSITE_TEST_SWIFT_CODE")
            return
        }
        let store = try Onsite.open(dataDir: tempDir())
        await assertThrowsAsync(try await store.sync().run(listener: nil)) { error in
            guard case ApiError.Unauthorized = error else { return XCTFail("\(error)") }
        }
        await assertThrowsAsync(try await store.sync().enrol(serverUrl: server, code: "AAAA-BBBB-CCCC")) { error in
            guard case ApiError.Unauthorized = error else { return XCTFail("\(error)") }
        }
        let enrolment = try await store.sync().enrol(serverUrl: server, code: code)
        XCTAssertEqual(enrolment.engineerId, "eng-swift")
        let progress = ProgressRecorder()
        let first = try await store.sync().run(listener: progress)
        XCTAssertEqual(first.ordersPulled, 3)
        XCTAssertTrue(progress.phases.contains(.orders))
        let rows = try store.orders().list(filter: OrderFilter(statuses: [], sort: .slaDeadline))
        XCTAssertEqual(Set(rows.map { $0.id }), ["WO-SWIFT-0001", "WO-SWIFT-0002", "WO-SWIFT-0003"])

        let id = "WO-SWIFT-0001"
        _ = try store.orders().transition(id: id, request: .accept, fix: nil)
        _ = try store.orders().addNote(id: id, text: "从 Swift 写的备注 / written from Swift")
        XCTAssertEqual(try store.sync().state().pendingOrders, 1)
        let second = try await store.sync().run(listener: nil)
        XCTAssertEqual(second.ordersPushed, 1)
        XCTAssertTrue(second.pendingErrors.isEmpty)
        let state = try store.sync().state()
        XCTAssertEqual(state.pendingOrders, 0)
        XCTAssertEqual(state.pendingJournal, 0)
        XCTAssertNotNil(state.lastSuccess)
        XCTAssertEqual(state.engineerId, "eng-swift")
    }

    func testUnreachableServerIsANetworkError() async throws {
        let store = try Onsite.open(dataDir: tempDir())
        await assertThrowsAsync(try await store.sync().enrol(serverUrl: "http://127.0.0.1:1", code: "AAAA-BBBB-CCCC")) { error in
            guard case let ApiError.Network(reason) = error else { return XCTFail("\(error)") }
            XCTAssertFalse(reason.isEmpty)
        }
    }
}
