import Foundation
import Onsite

public struct OrderDetailState: Sendable {
    public var screen: OrderScreen?
    /// A photo is being stored or a bundle written.
    public var busy = false
    public var error: UiError?
}

/// The detail screen: order, checklist, photos and receipts in one record, and the
/// engineer's actions on it (one FFI call each).
public final class OrderDetailModel: @unchecked Sendable {
    private let onsite: Onsite
    public let orderId: String
    public let state = Observed(OrderDetailState())

    init(_ onsite: Onsite, orderId: String) {
        self.onsite = onsite
        self.orderId = orderId
    }

    public func refresh() {
        do {
            let screen = try onsite.orders().screen(id: orderId)
            state.update { $0.screen = screen; $0.error = nil }
        } catch {
            state.update { $0.error = UiError(error) }
        }
    }

    @discardableResult
    private func act<T>(_ body: () throws -> T) -> T? {
        do {
            let r = try body()
            state.update { $0.error = nil }
            return r
        } catch {
            state.update { $0.error = UiError(error) }
            return nil
        }
    }

    private func actAsync<T>(_ body: () async throws -> T) async -> T? {
        state.update { $0.busy = true }
        defer { state.update { $0.busy = false } }
        do {
            let r = try await body()
            state.update { $0.error = nil }
            return r
        } catch {
            state.update { $0.error = UiError(error) }
            return nil
        }
    }

    /// A lifecycle button; false when refused (the error is in the state).
    @discardableResult
    public func transition(_ request: TransitionRequest, fix: GpsFix? = nil) -> Bool {
        act { try onsite.orders().transition(id: orderId, request: request, fix: fix) } != nil
    }

    @discardableResult
    public func addNote(_ text: String) -> Bool { act { try onsite.orders().addNote(id: orderId, text: text) } != nil }

    @discardableResult
    public func startChecklist(_ templateId: String = "onsite-repair") -> Bool {
        act { try onsite.checklist().start(orderId: orderId, templateId: templateId) } != nil
    }

    @discardableResult
    public func answer(_ stepId: String, _ answer: StepAnswer) -> Bool {
        act { try onsite.checklist().answer(orderId: orderId, stepId: stepId, answer: answer) } != nil
    }

    /// A camera capture for a photo step: stored as evidence off the main thread; once the
    /// step has its minimum number of photos, the step is answered with them.
    public func capturePhoto(stepId: String?, jpeg: Data, fix: GpsFix? = nil) async -> IngestReport? {
        await actAsync {
            let report = try await onsite.evidence().ingestCancellable(orderId: orderId, stepId: stepId, bytes: jpeg, fix: fix)
            if let stepId {
                let view = try onsite.checklist().view(orderId: orderId)
                if case let .photo(min, _)? = view.steps.first(where: { $0.id == stepId })?.kind, view.open.contains(stepId) {
                    let taken = try onsite.evidence().photos(orderId: orderId).filter { $0.step == stepId }
                    if taken.count >= Int(max(1, min)) {
                        _ = try onsite.checklist().answer(orderId: orderId, stepId: stepId, answer: .photos(photos: taken.map { PhotoRef(sha256: $0.sha256, label: stepId) }))
                    }
                }
            }
            return report
        }
    }

    public func sign(_ request: ReceiptRequest) -> SignedReceiptInfo? {
        act { try onsite.receipts().sign(orderId: orderId, request: request) }
    }

    /// Writes the arbitration bundle and checks it as a third party would.
    public func exportBundle(to path: String, thumbnailsOnly: Bool = false) async -> (BundleExport, BundleReport)? {
        await actAsync {
            let export = try await onsite.receipts().exportBundleCancellable(orderId: orderId, path: path, thumbnailsOnly: thumbnailsOnly)
            return (export, verifyBundle(path: export.path, deviceKey: onsite.publicKey()))
        }
    }
}
