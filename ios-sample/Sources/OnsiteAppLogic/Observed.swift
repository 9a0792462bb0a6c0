// A tiny observable value for the logic layer: thread-safe, platform-neutral (no Combine,
// so it runs on Linux too). The SwiftUI layer bridges it to `ObservableObject`.
import Foundation

public final class Observed<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: Value
    private var observers: [UUID: (Value) -> Void] = [:]

    public init(_ value: Value) { _value = value }

    public var value: Value {
        lock.lock(); defer { lock.unlock() }
        return _value
    }

    /// Changes the value and tells the observers (on the calling thread).
    public func update(_ change: (inout Value) -> Void) {
        lock.lock()
        change(&_value)
        let now = _value
        let callbacks = Array(observers.values)
        lock.unlock()
        callbacks.forEach { $0(now) }
    }

    /// Observes changes until the returned token is released.
    public func observe(_ callback: @escaping (Value) -> Void) -> ObservationToken {
        let id = UUID()
        lock.lock(); observers[id] = callback; lock.unlock()
        return ObservationToken { [weak self] in
            guard let self else { return }
            self.lock.lock(); self.observers[id] = nil; self.lock.unlock()
        }
    }
}

public final class ObservationToken {
    private let cancel: () -> Void
    init(_ cancel: @escaping () -> Void) { self.cancel = cancel }
    deinit { cancel() }
}
