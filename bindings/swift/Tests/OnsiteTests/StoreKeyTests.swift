// Encryption at rest from Swift: the store opens through the platform's key (here a fixed
// key, as a Keychain item would give), a wrong key and a locked keychain are their own error
// and leave the file as it was.
import Foundation
import XCTest
@testable import Onsite

final class FixedStoreKey: StoreKeyProvider, @unchecked Sendable {
    let key: Data?
    init(_ key: Data?) { self.key = key }
    func storeKey() throws -> Data {
        guard let key else { throw ApiError.Internal(reason: "errSecInteractionNotAllowed: locked before first unlock") }
        return key
    }
}

final class StoreKeyTests: XCTestCase {
    private var samples: String {
        let path = ProcessInfo.processInfo.environment["ONSITE_SAMPLES"] ?? "/src/cli/samples/orders.json"
        return try! String(contentsOfFile: path, encoding: .utf8)
    }

    func testEncryptedStoreOpensWithThePlatformKeyOnly() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("onsite-swift-key-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = root.appendingPathComponent("data").path
        let right = FixedStoreKey(Data(repeating: 0x33, count: 32))
        do {
            let store = try Onsite.openWithPlatform(dataDir: dir, clock: nil, signer: nil, location: nil, storeKey: right)
            _ = try store.orders().importJson(json: samples)
        }
        let db = URL(fileURLWithPath: dir).appendingPathComponent("onsite.sqlite3")
        let before = try Data(contentsOf: db)
        XCTAssertFalse(before.starts(with: Data("SQLite format 3".utf8)), "no plain SQLite header")
        XCTAssertNil(before.range(of: Data("Chaoyang".utf8)), "the customer's address is not in the file")
        XCTAssertThrowsError(try Onsite.openWithPlatform(dataDir: dir, clock: nil, signer: nil, location: nil, storeKey: FixedStoreKey(Data(repeating: 0x34, count: 32)))) { error in
            guard case ApiError.StoreKey(let problem, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(problem, .wrong)
        }
        XCTAssertThrowsError(try Onsite.openWithPlatform(dataDir: dir, clock: nil, signer: nil, location: nil, storeKey: FixedStoreKey(nil))) { error in
            guard case ApiError.StoreKey(let problem, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(problem, .unavailable)
        }
        XCTAssertEqual(try Data(contentsOf: db), before, "the file is untouched")
        let again = try Onsite.openWithPlatform(dataDir: dir, clock: nil, signer: nil, location: nil, storeKey: right)
        XCTAssertEqual(try again.orders().list(filter: OrderFilter(statuses: [], sort: .slaDeadline)).count, 3)
    }
}
