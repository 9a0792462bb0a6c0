import Foundation
import Onsite

public struct SyncProgress: Equatable, Sendable {
    public let phase: SyncPhase
    public let done: UInt64
    public let total: UInt64
}

public struct SyncUiState: Sendable {
    public var state: SyncState?
    public var running = false
    public var progress: SyncProgress?
    public var last: SyncSummary?
    public var error: UiError?
}

/// The sync bar: enrolment, a pass with progress, what is still pending.
/// The platform's proof that the device key lives in hardware, for one enrolment: on iOS an
/// App Attest object over SHA-256 of `clientData` (which names the Secure Enclave device
/// key). `nil`: this device has none (simulator, App Attest unsupported).
public protocol KeyAttestor: Sendable {
    func attest(challenge: Data, clientData: Data) async throws -> KeyAttestation?
}

public final class SyncModel: @unchecked Sendable {
    private let onsite: Onsite
    private let attestor: KeyAttestor?
    public let state = Observed(SyncUiState())

    init(_ onsite: Onsite, attestor: KeyAttestor? = nil) {
        self.onsite = onsite
        self.attestor = attestor
    }

    private final class Progress: SyncProgressListener, @unchecked Sendable {
        let box: Observed<SyncUiState>
        init(_ box: Observed<SyncUiState>) { self.box = box }
        func onProgress(phase: SyncPhase, done: UInt64, total: UInt64) throws {
            box.update { $0.progress = SyncProgress(phase: phase, done: done, total: total) }
        }
    }

    public func refresh() {
        do {
            let s = try onsite.sync().state()
            state.update { $0.state = s }
        } catch {
            state.update { $0.error = UiError(error) }
        }
    }

    public func enrol(serverUrl: String, code: String) async -> Enrolment? {
        do {
            let url = serverUrl.hasSuffix("/") ? String(serverUrl.dropLast()) : serverUrl
            let c = code.trimmingCharacters(in: .whitespaces).uppercased()
            // An attestor that fails leaves the enrolment unattested; the server's policy decides.
            var attestation: KeyAttestation? = nil
            if let attestor, let clientData = try? onsite.sync().appAttestClientData(code: c) {
                attestation = try? await attestor.attest(challenge: onsite.sync().attestationChallenge(code: c), clientData: clientData)
            }
            let e = try await cancellable { try await onsite.sync().enrol(serverUrl: url, code: c, cancelToken: $0, attestation: attestation) }
            refresh()
            return e
        } catch {
            state.update { $0.error = UiError(error) }
            return nil
        }
    }

    /// One pass; cancel the calling Task to stop it (the next pass resumes).
    public func syncNow() async -> SyncSummary? {
        state.update { $0.running = true; $0.progress = nil; $0.error = nil }
        defer {
            state.update { $0.running = false }
            refresh()
        }
        do {
            let summary = try await onsite.sync().runCancellable(listener: Progress(state))
            state.update { $0.last = summary }
            return summary
        } catch {
            state.update { $0.error = UiError(error) }
            return nil
        }
    }
}
