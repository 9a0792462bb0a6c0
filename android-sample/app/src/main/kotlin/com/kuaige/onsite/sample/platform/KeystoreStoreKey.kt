package com.kuaige.onsite.sample.platform

import android.content.Context
import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import android.util.AtomicFile
import com.kuaige.onsite.ApiException
import com.kuaige.onsite.StoreKeyProvider
import java.io.File
import java.security.KeyStore
import java.security.SecureRandom
import javax.crypto.Cipher
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/**
 * The store's 32-byte key, wrapped by an AES-256-GCM key in Android Keystore (hardware-backed
 * where the phone has it; never exportable). The wrapped key (nonce + ciphertext + tag) lives
 * in `no_backup/` so a backup of the app's files carries neither the store's key nor a way to
 * unwrap it: the Keystore key never leaves this phone (docs/adr/0018).
 */
class KeystoreStoreKey(context: Context) : StoreKeyProvider {
    private val file = AtomicFile(File(context.noBackupFilesDir, "onsite-store.key.wrapped"))

    override fun storeKey(): ByteArray = try {
        val wrapping = wrappingKey()
        if (file.baseFile.exists()) {
            val blob = file.readFully()
            Cipher.getInstance("AES/GCM/NoPadding").run {
                init(Cipher.DECRYPT_MODE, wrapping, GCMParameterSpec(128, blob, 0, 12))
                doFinal(blob, 12, blob.size - 12)
            }
        } else {
            val key = ByteArray(32).also { SecureRandom().nextBytes(it) }
            val cipher = Cipher.getInstance("AES/GCM/NoPadding").apply { init(Cipher.ENCRYPT_MODE, wrapping) }
            val sealed = cipher.iv + cipher.doFinal(key)
            val out = file.startWrite()
            try {
                out.write(sealed)
                file.finishWrite(out)
            } catch (e: Exception) {
                file.failWrite(out)
                throw e
            }
            key
        }
    } catch (e: Exception) {
        // Locked keystore (before first unlock), a key invalidated by a reset: the core
        // reports ApiError.StoreKey(Unavailable) and touches nothing.
        throw ApiException.Internal("the store key cannot be unwrapped: ${e.message}")
    }

    private fun wrappingKey(): SecretKey {
        val ks = KeyStore.getInstance("AndroidKeyStore").apply { load(null) }
        (ks.getKey(ALIAS, null) as? SecretKey)?.let { return it }
        val spec = KeyGenParameterSpec.Builder(ALIAS, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
            .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
            .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
            .setKeySize(256)
            // Usable once the phone was unlocked after boot (background sync), not before.
            .setUnlockedDeviceRequired(false)
            .build()
        return KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, "AndroidKeyStore").run {
            init(spec)
            generateKey()
        }
    }

    companion object {
        private const val ALIAS = "onsite-store-wrapping-key"
    }
}
