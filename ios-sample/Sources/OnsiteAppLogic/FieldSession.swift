import Foundation
import Onsite

/// What only the platform has: on iOS a Secure Enclave signer, CoreLocation, OSLog, and
/// ImageIO for HEIC/AVIF photos.
public struct Platform {
    public var signer: DeviceSigner?
    public var imageDecoder: ImageDecoder?
    public var location: LocationProvider?
    public var log: LogSink?
    public var logLevel: LogLevel
    public var clock: ClockSource?
    /// The store's encryption key (the app: a Keychain item, this device only).
    public var storeKey: StoreKeyProvider?
    /// App Attest's proof for the device key, sent with the enrolment.
    public var attestor: KeyAttestor?

    public init(signer: DeviceSigner? = nil, imageDecoder: ImageDecoder? = nil, location: LocationProvider? = nil, log: LogSink? = nil, logLevel: LogLevel = .info, clock: ClockSource? = nil, storeKey: StoreKeyProvider? = nil, attestor: KeyAttestor? = nil) {
        self.storeKey = storeKey
        self.attestor = attestor
        self.signer = signer
        self.imageDecoder = imageDecoder
        self.location = location
        self.log = log
        self.logLevel = logLevel
        self.clock = clock
    }
}

/// The app's one handle on the core: opens the store, owns the screen models, and routes
/// the core's change notifications to them so screens refresh after edits and merges.
public final class FieldSession: @unchecked Sendable {
    public let onsite: Onsite
    public let orders: OrderListModel
    public let sync: SyncModel
    /// Order ids as they change, newest last (for a badge, or tests).
    public let changes = Observed<[[String]]>([])
    private let lock = NSLock()
    private var details: [String: OrderDetailModel] = [:]
    private var subscription: ChangeSubscription?

    private final class Relay: OrderChangeListener, @unchecked Sendable {
        weak var session: FieldSession?
        func onOrdersChanged(orderIds: [String], origin: ChangeOrigin) throws {
            session?.changed(orderIds, origin: origin)
        }
    }

    public init(dataDir: String, platform: Platform = Platform()) throws {
        if let log = platform.log { try setLogSink(sink: log, level: platform.logLevel) }
        onsite = try Onsite.openWithPlatform(dataDir: dataDir, clock: platform.clock, signer: platform.signer, location: platform.location, storeKey: platform.storeKey)
        if let decoder = platform.imageDecoder { onsite.setImageDecoder(decoder: decoder) }
        orders = OrderListModel(onsite)
        sync = SyncModel(onsite, attestor: platform.attestor)
        let relay = Relay()
        relay.session = self
        subscription = onsite.subscribe(listener: relay)
        orders.refresh()
        sync.refresh()
    }

    deinit { subscription?.cancel() }

    /// The detail screen's model, one per order while the session lives.
    public func detail(_ orderId: String) -> OrderDetailModel {
        lock.lock(); defer { lock.unlock() }
        if let m = details[orderId] { return m }
        let m = OrderDetailModel(onsite, orderId: orderId)
        details[orderId] = m
        return m
    }

    private func changed(_ ids: [String], origin: ChangeOrigin) {
        orders.refresh()
        lock.lock()
        let open = ids.compactMap { details[$0] }
        lock.unlock()
        open.forEach { $0.refresh() }
        if origin == .remote { sync.refresh() }
        changes.update { $0.append(ids) }
    }
}
