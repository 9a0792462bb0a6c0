// Swift concurrency glue for the generated bindings: Task cancellation reaches the core.
// The generated async functions take an optional `CancelToken`; `cancellable` hands one in
// and fires it when the surrounding Task is cancelled, so the call answers
// `ApiError.Cancelled` at once and the core stops at its next safe point.
import Foundation

/// Runs `body` with a token that fires when the current Task is cancelled.
public func cancellable<T>(_ body: (CancelToken) async throws -> T) async throws -> T {
    let token = CancelToken()
    return try await withTaskCancellationHandler {
        try await body(token)
    } onCancel: {
        token.cancel()
    }
}

extension SyncApi {
    /// One sync pass that stops when the calling Task is cancelled.
    public func runCancellable(listener: SyncProgressListener? = nil) async throws -> SyncSummary {
        try await cancellable { try await self.run(listener: listener, cancelToken: $0) }
    }
}

extension EvidenceApi {
    /// Stores a camera capture as evidence; stops when the calling Task is cancelled.
    public func ingestCancellable(orderId: String, stepId: String?, bytes: Data, fix: GpsFix?) async throws -> IngestReport {
        try await cancellable { try await self.ingestBytes(orderId: orderId, stepId: stepId, bytes: bytes, fix: fix, cancelToken: $0) }
    }
}

extension ReceiptsApi {
    /// Writes the arbitration bundle; stops (leaving `path` untouched) when the Task is cancelled.
    public func exportBundleCancellable(orderId: String, path: String, thumbnailsOnly: Bool = false) async throws -> BundleExport {
        try await cancellable { try await self.exportBundle(orderId: orderId, path: path, thumbnailsOnly: thumbnailsOnly, cancelToken: $0) }
    }
}
