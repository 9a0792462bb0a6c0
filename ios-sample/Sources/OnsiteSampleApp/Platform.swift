// What only the platform has: the Secure Enclave key, CoreLocation, OSLog, the camera.
#if canImport(SwiftUI) && canImport(CryptoKit) && canImport(CoreLocation) && canImport(OSLog)
import CoreLocation
import OnsiteAppLogic
import CryptoKit
import DeviceCheck
import Security
import Foundation
import Onsite
import OSLog
import SwiftUI

/// The device key in the Secure Enclave (P-256, never exportable); its persistent handle is
/// kept in the app's data. Falls back to a software key on the simulator.
final class SecureEnclaveSigner: DeviceSigner, @unchecked Sendable {
    private let key: SecureEnclave.P256.Signing.PrivateKey

    private init(key: SecureEnclave.P256.Signing.PrivateKey) { self.key = key }

    static func loadOrCreate() -> DeviceSigner? {
        guard SecureEnclave.isAvailable else { return nil }
        let url = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0].appendingPathComponent("device-key.handle")
        if let data = try? Data(contentsOf: url), let key = try? SecureEnclave.P256.Signing.PrivateKey(dataRepresentation: data) {
            return SecureEnclaveSigner(key: key)
        }
        guard let key = try? SecureEnclave.P256.Signing.PrivateKey() else { return nil }
        try? key.dataRepresentation.write(to: url, options: .completeFileProtection)
        return SecureEnclaveSigner(key: key)
    }

    func publicKey() -> Data { key.publicKey.x963Representation }

    func sign(message: Data) throws -> Data {
        do {
            return try key.signature(for: message).rawRepresentation
        } catch {
            throw ApiError.Internal(reason: "secure enclave signing failed: \(error)")
        }
    }
}

/// The store's 32-byte key as a Keychain item: accessible after the first unlock since boot
/// (so background sync works), on this device only (not in backups, not migrated to a new
/// phone; docs/adr/0018). Created on first use.
final class KeychainStoreKey: StoreKeyProvider, @unchecked Sendable {
    private let query: [String: Any] = [
        kSecClass as String: kSecClassGenericPassword,
        kSecAttrService as String: "com.kuaige.onsite",
        kSecAttrAccount as String: "store-key",
    ]

    func storeKey() throws -> Data {
        var read = query
        read[kSecReturnData as String] = true
        read[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        switch SecItemCopyMatching(read as CFDictionary, &item) {
        case errSecSuccess:
            guard let data = item as? Data, data.count == 32 else { throw ApiError.Internal(reason: "the keychain's store key is malformed") }
            return data
        case errSecItemNotFound:
            var key = Data(count: 32)
            let rc = key.withUnsafeMutableBytes { SecRandomCopyBytes(kSecRandomDefault, 32, $0.baseAddress!) }
            guard rc == errSecSuccess else { throw ApiError.Internal(reason: "no random bytes (\(rc))") }
            var add = query
            add[kSecValueData as String] = key
            add[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
            let status = SecItemAdd(add as CFDictionary, nil)
            if status == errSecDuplicateItem { return try storeKey() }
            guard status == errSecSuccess else { throw ApiError.Internal(reason: "keychain add failed (\(status))") }
            return key
        case let status:
            // errSecInteractionNotAllowed before the first unlock: the core reports
            // ApiError.StoreKey(.unavailable) and touches nothing.
            throw ApiError.Internal(reason: "the keychain is unavailable (\(status))")
        }
    }
}

/// App Attest (DeviceCheck): a key in the Secure Enclave made for this app, attested by Apple
/// over SHA-256 of the enrolment's client data, which names the device key (docs/adr/0019).
/// The key id is kept so a later enrolment attests again with the same key.
final class AppAttestor: KeyAttestor {
    func attest(challenge: Data, clientData: Data) async throws -> KeyAttestation? {
        let service = DCAppAttestService.shared
        guard service.isSupported else { return nil }
        let defaults = UserDefaults.standard
        let keyId: String
        if let saved = defaults.string(forKey: "onsite.appAttestKeyId") {
            keyId = saved
        } else {
            keyId = try await service.generateKey()
            defaults.set(keyId, forKey: "onsite.appAttestKeyId")
        }
        let hash = Data(SHA256.hash(data: clientData))
        let object = try await service.attestKey(keyId, clientDataHash: hash)
        guard let id = Data(base64Encoded: keyId) else { return nil }
        return .appleAppAttest(keyId: id, object: object)
    }
}

/// Keeps the latest CoreLocation fix; the core asks synchronously during an arrival or photo.
final class CoreLocationProvider: NSObject, LocationProvider, CLLocationManagerDelegate, @unchecked Sendable {
    static let shared = CoreLocationProvider()
    private let manager = CLLocationManager()
    private var last: CLLocation?

    override init() {
        super.init()
        manager.delegate = self
        manager.requestWhenInUseAuthorization()
        manager.startUpdatingLocation()
    }

    func locationManager(_ manager: CLLocationManager, didUpdateLocations locations: [CLLocation]) {
        last = locations.last
    }

    func currentFix() throws -> GpsFix? {
        guard let l = last, -l.timestamp.timeIntervalSinceNow < 120 else { return nil }
        var simulated = false
        if #available(iOS 15.0, macOS 12.0, *) { simulated = l.sourceInformation?.isSimulatedBySoftware ?? false }
        return GpsFix(lat: l.coordinate.latitude, lon: l.coordinate.longitude, accuracyM: l.horizontalAccuracy, source: .gps, mock: simulated)
    }
}

/// The core's log lines in OSLog, one category per module.
final class OSLogSink: LogSink, @unchecked Sendable {
    func log(record: LogRecord) throws {
        let logger = Logger(subsystem: "com.kuaige.onsite", category: record.target)
        switch record.level {
        case .error: logger.error("\(record.message, privacy: .public)")
        case .warn: logger.warning("\(record.message, privacy: .public)")
        case .info: logger.info("\(record.message, privacy: .public)")
        case .debug, .trace: logger.debug("\(record.message, privacy: .public)")
        }
    }
}
#endif

#if canImport(UIKit) && canImport(SwiftUI)
import OnsiteAppLogic
import UIKit

/// The system camera; the JPEG (with its EXIF) goes to the core's ingest.
struct CameraView: UIViewControllerRepresentable {
    let model: OrderDetailModel
    let stepId: String

    func makeUIViewController(context: Context) -> UIImagePickerController {
        let picker = UIImagePickerController()
        picker.sourceType = UIImagePickerController.isSourceTypeAvailable(.camera) ? .camera : .photoLibrary
        picker.delegate = context.coordinator
        return picker
    }

    func updateUIViewController(_ controller: UIImagePickerController, context: Context) {}

    func makeCoordinator() -> Coordinator { Coordinator(model: model, stepId: stepId) }

    final class Coordinator: NSObject, UIImagePickerControllerDelegate, UINavigationControllerDelegate {
        let model: OrderDetailModel
        let stepId: String
        init(model: OrderDetailModel, stepId: String) { self.model = model; self.stepId = stepId }

        func imagePickerController(_ picker: UIImagePickerController, didFinishPickingMediaWithInfo info: [UIImagePickerController.InfoKey: Any]) {
            picker.dismiss(animated: true)
            guard let image = info[.originalImage] as? UIImage, let jpeg = image.jpegData(compressionQuality: 0.9) else { return }
            Task { _ = await model.capturePhoto(stepId: stepId, jpeg: jpeg) }
        }
    }
}
#elseif canImport(SwiftUI)
import OnsiteAppLogic
import SwiftUI

/// macOS: no camera picker in this sample; photos come from files.
struct CameraView: View {
    let model: OrderDetailModel
    let stepId: String
    var body: some View { Text("Use an iPhone to capture photos") }
}
#endif
