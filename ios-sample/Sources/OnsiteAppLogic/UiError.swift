import Foundation
import Onsite

/// What a screen shows for a failed action, and what the engineer can do about it.
public struct UiError: Equatable, Sendable {
    public enum Action: Sendable { case none, retry, fixInput, enrolAgain, reopen, updateApp }
    public let message: String
    public let action: Action
    public var field: String? = nil
}

extension UiError {
    /// One place that turns the core's typed errors into words and actions.
    public init(_ error: Error) {
        switch error {
        case let ApiError.NotFound(id): self.init(message: "Not found: \(id)", action: .none)
        case let ApiError.InvalidInput(field, reason): self.init(message: "Check \(field): \(reason)", action: .fixInput, field: field)
        case let ApiError.IllegalTransition(from, _): self.init(message: "Not possible while the order is \(from)", action: .none)
        case let ApiError.Blocked(count, first): self.init(message: "\(count) checklist step(s) still open, first: \(first)", action: .fixInput, field: first)
        case let ApiError.StepRefused(step, reason): self.init(message: "Step \(step): \(reason)", action: .fixInput, field: step)
        case let ApiError.NotPermitted(reason): self.init(message: reason, action: .none)
        case let ApiError.Conflict(reason): self.init(message: reason, action: .retry)
        case ApiError.Network: self.init(message: "No connection to the server; your work is saved and will be sent later", action: .retry)
        case ApiError.Unauthorized: self.init(message: "This phone must be enrolled again: ask the dispatcher for a code", action: .enrolAgain)
        case ApiError.DatabaseTooNew: self.init(message: "This data was written by a newer app version", action: .updateApp)
        case let ApiError.Storage(reason), let ApiError.Corrupt(reason): self.init(message: "Storage problem: \(reason)", action: .retry)
        case ApiError.StoreKey(.unavailable, _): self.init(message: "Unlock the phone to open the app's data", action: .retry)
        case ApiError.StoreKey(_, _): self.init(message: "This phone's data cannot be opened with its key: sync what you can and enrol again", action: .enrolAgain)
        case ApiError.Closed: self.init(message: "The store was closed", action: .reopen)
        case ApiError.Cancelled, is CancellationError: self.init(message: "Cancelled", action: .none)
        default: self.init(message: "\(error)", action: .retry)
        }
    }
}
