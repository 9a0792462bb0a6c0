import Foundation
import Onsite

public struct OrderListState: Sendable {
    public var rows: [OrderSummary] = []
    /// Empty: every status.
    public var statuses: [OrderStatus] = []
    public var error: UiError?
}

/// The order list, sorted by the next SLA deadline (summary rows: one FFI call per refresh).
public final class OrderListModel: @unchecked Sendable {
    private let onsite: Onsite
    public let state = Observed(OrderListState())

    init(_ onsite: Onsite) { self.onsite = onsite }

    public func refresh() {
        do {
            let rows = try onsite.orders().list(filter: OrderFilter(statuses: state.value.statuses, sort: .slaDeadline))
            state.update { $0.rows = rows; $0.error = nil }
        } catch {
            state.update { $0.error = UiError(error) }
        }
    }

    public func showOnly(_ statuses: [OrderStatus]) {
        state.update { $0.statuses = statuses }
        refresh()
    }
}
